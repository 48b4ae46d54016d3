import assert from "node:assert/strict";
import { after, afterEach, beforeEach, describe, it } from "node:test";
import pg from "pg";
import { startServiceReconciler, type ServiceReconciler, type ServiceReconcilerOptions } from "../../../src/platform/services/loop.ts";
import { REQUEST_CHANNEL, RESULT_CHANNEL } from "../../../src/platform/services/notify.ts";
import { portAnswers } from "../../../src/platform/services/ports.ts";
import type { PassResult } from "../../../src/platform/services/types.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { addService, allowNode, alive, fastPolicy, freePort, killEverything, removeTempDirs, row, tempLogDir, uniqueHost, waitFor } from "./fixtures/harness.ts";

const db = useTestDatabase();
const hostA = uniqueHost("loop-a");
const hostB = uniqueHost("loop-b");
const running: ServiceReconciler[] = [];

after(() => {
  killEverything([hostA, hostB]);
  removeTempDirs();
});
beforeEach(async () => {
  killEverything([hostA, hostB]);
  await db.pool.query("delete from services");
});
afterEach(async () => {
  for (const reconciler of running.splice(0)) await reconciler.stop();
});

async function reconciler(host: string, options: Partial<ServiceReconcilerOptions> = {}): Promise<ServiceReconciler> {
  const started = await startServiceReconciler({
    pool: db.pool,
    host,
    logger: testLogger,
    intervalMs: 60_000, // only requests, exits and back-offs wake it in these tests
    protectedPorts: [],
    logDir: tempLogDir(),
    policy: fastPolicy,
    allowlist: allowNode,
    ...options,
  });
  running.push(started);
  return started;
}

describe("the reconcile loop", () => {
  it("costs an idle host no database work: timed passes over steady services plan locally; a crash or a change reads the database at once", async () => {
    const port = await freePort();
    await addService(db.pool, { name: "steady", host: hostA, port });
    const counted = new pg.Pool({ connectionString: db.connectionString, max: 4 });
    let databaseUses = 0;
    const connect = counted.connect.bind(counted);
    const query = counted.query.bind(counted);
    counted.connect = ((...args: unknown[]) => ((databaseUses += 1), (connect as (...a: unknown[]) => unknown)(...args))) as typeof counted.connect;
    counted.query = ((...args: unknown[]) => ((databaseUses += 1), (query as (...a: unknown[]) => unknown)(...args))) as typeof counted.query;
    try {
      const loop = await reconciler(hostA, { pool: counted, intervalMs: 100 });
      const first = await waitFor("steady running", async () => {
        await loop.reconcileNow();
        const current = await row(db.pool, "steady");
        return current?.status === "running" ? current : null;
      });
      await loop.reconcileNow(); // a full pass that finds everything steady
      const before = databaseUses;
      await new Promise((resolve) => setTimeout(resolve, 1500)); // ~15 timed passes
      assert.ok(databaseUses - before <= 1, `timed passes over steady services used the database ${databaseUses - before} time(s)`);

      process.kill(first.pid!, "SIGKILL"); // only the local plan can see this
      const replaced = await waitFor("a new process", async () => {
        const current = await row(db.pool, "steady");
        return current?.status === "running" && current.pid !== first.pid ? current : null;
      }, 10_000);
      assert.ok(alive(replaced.pid!));

      await db.pool.query("update services set desired_status = 'disabled' where name = 'steady'"); // the trigger notifies the host
      await waitFor("the disabled service stopped and removed", async () => (await row(db.pool, "steady")) === undefined, 10_000);
      assert.ok(!alive(replaced.pid!));
    } finally {
      for (const reconciler of running.splice(0)) await reconciler.stop();
      await counted.end();
    }
  });

  it("each host reconciles only its own services, on one shared database", async () => {
    const portA = await freePort();
    const portB = await freePort();
    await addService(db.pool, { name: "a1", host: hostA, port: portA });
    await addService(db.pool, { name: "b1", host: hostB, port: portB });
    const loopA = await reconciler(hostA);
    await waitFor("a1 running", async () => (await loopA.reconcileNow()) && (await row(db.pool, "a1"))?.status === "running");
    const b1 = await row(db.pool, "b1");
    assert.equal(b1?.status, "stopped", "host A did not touch host B's service");
    assert.equal(b1?.pid, null);
    assert.equal(await portAnswers(portB), false);

    const loopB = await reconciler(hostB);
    const b1Running = await waitFor("b1 running", async () => {
      await loopB.reconcileNow();
      const current = await row(db.pool, "b1");
      return current?.status === "running" ? current : null;
    });
    const a1Before = await row(db.pool, "a1");
    await db.pool.query("update services set desired_status = 'disabled' where name = 'a1'");
    await waitFor("a1 gone", async () => (await loopA.reconcileNow()) && (await row(db.pool, "a1")) === undefined);
    assert.ok(!alive(a1Before!.pid!));
    await loopB.reconcileNow();
    const b1After = await row(db.pool, "b1");
    assert.equal(b1After?.pid, b1Running.pid, "host B's service kept running");
    assert.ok(alive(b1Running.pid!));
  });

  it("reacts at once to a change of the services table and to NOTIFY with the host name", async () => {
    // (at once: long before the 60 s interval; the waits below leave a loaded machine time to
    // start a Node process and stop another)
    const loop = await reconciler(hostA);
    await loop.reconcileNow();
    const port = await freePort();
    await addService(db.pool, { name: "web", host: hostA, port }); // the trigger notifies the host
    const first = await waitFor("started without a request", async () => (await row(db.pool, "web"))?.pid, 15_000);
    await waitFor("running", async () => (await row(db.pool, "web"))?.status === "running" || (await db.pool.query("select pg_notify($1, $2)", [REQUEST_CHANNEL, hostA]) && false), 15_000);
    // the row forgets its process: only a pass can notice the orphan (ours by its marker) and replace it
    await db.pool.query("update services set status = 'stopped', pid = null where name = 'web'");
    await db.pool.query("select pg_notify($1, $2)", [REQUEST_CHANNEL, hostA]);
    const second = await waitFor("a new process", async () => {
      const current = await row(db.pool, "web");
      return current?.pid && current.pid !== first ? current.pid : null;
    }, 15_000);
    assert.ok(!alive(first), "the orphan of ours was stopped");
    assert.ok(alive(second));
  });

  it("answers a request with an id with the result of the pass it ran", async () => {
    await reconciler(hostA);
    await addService(db.pool, { name: "web", host: hostA, port: await freePort() });
    const client = new pg.Client({ connectionString: db.connectionString });
    await client.connect();
    try {
      await client.query(`listen ${RESULT_CHANNEL}`);
      const reply = new Promise<{ requestId: string; result: PassResult }>((resolve) => {
        client.on("notification", (message) => {
          const parsed = JSON.parse(message.payload ?? "{}");
          if (parsed.requestId === "req-1") resolve(parsed);
        });
      });
      await client.query("select pg_notify($1, $2)", [REQUEST_CHANNEL, JSON.stringify({ host: "some-other-host", requestId: "req-other" })]);
      await client.query("select pg_notify($1, $2)", [REQUEST_CHANNEL, JSON.stringify({ host: hostA, requestId: "req-1" })]);
      const answer = await Promise.race([reply, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no reply within 10 s")), 10_000))]);
      assert.equal(answer.result.host, hostA);
      assert.equal(answer.result.services, 1);
    } finally {
      await client.end();
    }
  });

  it("restarts a crashed service soon after its back-off, without waiting for the interval", async () => {
    const port = await freePort();
    await addService(db.pool, { name: "flaky", host: hostA, port, args: [(await import("./fixtures/harness.ts")).fixture, "--crash-after", "300"] });
    await reconciler(hostA);
    await waitFor("a restart", async () => ((await row(db.pool, "flaky"))?.restart_count ?? 0) >= 1, 8000);
  });

  it("leave-running: a stopped loop leaves services up, and the next one adopts them without a restart", async () => {
    const port = await freePort();
    await addService(db.pool, { name: "web", host: hostA, port });
    const first = await reconciler(hostA);
    const up = await waitFor("running", async () => {
      await first.reconcileNow();
      const current = await row(db.pool, "web");
      return current?.status === "running" ? current : null;
    });
    await first.stop();
    assert.ok(alive(up.pid!));
    const second = await reconciler(hostA);
    const result = await second.reconcileNow();
    assert.equal(result.actions.length, 0);
    assert.equal((await row(db.pool, "web"))?.pid, up.pid);
  });

  it("stop policy: services are stopped (not left half-stopped) and stay enabled", async () => {
    const port = await freePort();
    await addService(db.pool, { name: "web", host: hostA, port });
    const loop = await reconciler(hostA, { onShutdown: "stop" });
    const up = await waitFor("running", async () => {
      await loop.reconcileNow();
      const current = await row(db.pool, "web");
      return current?.status === "running" ? current : null;
    });
    await loop.stop();
    assert.ok(!alive(up.pid!));
    const after = await row(db.pool, "web");
    assert.equal(after?.status, "stopped");
    assert.equal(after?.desired_status, "enabled");
    assert.equal(await portAnswers(port), false);
  });

  it("its listener reconnects after its connection is killed", async () => {
    const loop = await reconciler(hostA);
    await loop.reconcileNow();
    const listeners = async () =>
      (await db.pool.query<{ pid: number }>("select pid from pg_stat_activity where application_name = 'systemprompt-scheduler services listener' and datname = current_database()")).rows.map((r) => r.pid);
    const [old] = await waitFor("the listener", async () => ((await listeners()).length === 1 ? listeners() : null));
    await db.pool.query("select pg_terminate_backend($1)", [old]);
    await waitFor("a new listener", async () => {
      const now = await listeners();
      return now.length === 1 && now[0] !== old;
    }, 8000);
    const port = await freePort();
    await addService(db.pool, { name: "late", host: hostA, port });
    await waitFor("started through the new listener", async () => (await row(db.pool, "late"))?.pid != null, 8000);
  });

  it("rejects a bad interval or shutdown policy with a readable error", async () => {
    await assert.rejects(startServiceReconciler({ pool: db.pool, host: hostA, logger: testLogger, intervalMs: 5 }), /at least 100 ms/);
    await assert.rejects(startServiceReconciler({ pool: db.pool, host: hostA, logger: testLogger, onShutdown: "explode" as "stop" }), /leave-running or stop/);
  });
});
