import assert from "node:assert/strict";
import fs from "node:fs";
import { after, beforeEach, describe, it } from "node:test";
import { stopService } from "../../../src/platform/services/act.ts";
import { portAnswers } from "../../../src/platform/services/ports.ts";
import { bootId, readMarker, readProcess } from "../../../src/platform/services/proc.ts";
import { reconcileHost, type ReconcileContext } from "../../../src/platform/services/reconcile.ts";
import { logFileFor } from "../../../src/platform/services/spawn.ts";
import { tryLockHost, unlockHost } from "../../../src/platform/services/store.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { addService, alive, allowNode, fixture, freePort, killEverything, removeTempDirs, reconcileContext, row, startForeign, uniqueHost, waitFor } from "./fixtures/harness.ts";

const db = useTestDatabase();
const host = uniqueHost("life");
after(() => {
  killEverything([host]);
  removeTempDirs();
});

let ctx: ReconcileContext;
beforeEach(async () => {
  killEverything([host]);
  await db.pool.query("delete from services");
  ctx = reconcileContext(db.pool, host);
});

const pass = async (context = ctx) => (await reconcileHost(context)).result;

/** Passes until the service reaches `status` (the loop would do the same, sooner or later). */
async function passUntil(name: string, status: string, timeoutMs = 10_000, context = ctx) {
  return waitFor(`${name} to be ${status}`, async () => {
    await pass(context);
    const current = await row(db.pool, name);
    return current?.status === status ? current : null;
  }, timeoutMs, 100);
}

describe("start and stop", () => {
  it("starts an enabled service detached, records who it is, and sees it running once the port answers", async () => {
    const port = await freePort();
    ctx = reconcileContext(db.pool, host, { allowlist: { ...allowNode, env: ["GREETING"] } });
    await addService(db.pool, { name: "web", host, port, env: { GREETING: "hi" } });
    const first = await pass();
    assert.equal(first.started, 1);
    assert.deepEqual(first.failed, []);
    const starting = await row(db.pool, "web");
    assert.equal(starting?.status, "starting");
    const running = await passUntil("web", "running");
    assert.ok(await portAnswers(port));
    const pid = running.pid!;
    assert.equal(running.process_start_ticks, readProcess(pid)?.startTicks, "its start time is recorded");
    assert.equal(running.boot_id, bootId());
    assert.equal(readProcess(pid)?.pgrp, pid, "it leads its own process group");
    assert.deepEqual(readMarker(pid), { service: "web", instance: running.instance_id });
    const environ = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    assert.ok(environ.includes("GREETING=hi") && environ.includes(`PORT=${port}`));
    assert.ok(!environ.some((entry) => entry.startsWith("TEST_DATABASE_URL=")), "the scheduler's own settings are not passed on");
    assert.match(fs.readFileSync(logFileFor(ctx.logDir, "web"), "utf8"), new RegExp(`listening on ${port}`));
    const idle = await pass();
    assert.equal(idle.actions.length, 0, "a running service needs nothing");
  });

  it("stops a disabled service with SIGTERM, waits for its port, then removes its row", async () => {
    const port = await freePort();
    await addService(db.pool, { name: "web", host, port });
    const { pid } = await passUntil("web", "running");
    await db.pool.query("update services set desired_status = 'disabled' where name = 'web'");
    const stopping = await pass();
    assert.equal(stopping.stopped, 1);
    assert.ok(!alive(pid!));
    assert.equal(await portAnswers(port), false);
    const stopped = await row(db.pool, "web");
    assert.equal(stopped?.status, "stopped");
    assert.equal(stopped?.pid, null);
    await waitFor("the exit code", async () => (await row(db.pool, "web"))?.last_exit_code === 0);
    const cleaned = await pass();
    assert.equal(cleaned.cleanedUp, 1);
    assert.equal(await row(db.pool, "web"), undefined);
  });

  it("kills a service that ignores SIGTERM after the grace period, children included", async () => {
    const port = await freePort();
    ctx = reconcileContext(db.pool, host, { policy: { stopGraceMs: 700 } });
    await addService(db.pool, { name: "stubborn", host, port, args: [fixture, "--ignore-term", "--child", "--child-ignore-term"] });
    const { pid } = await passUntil("stubborn", "running");
    const child = await waitFor("the grandchild", () => [...fs.readdirSync("/proc")].map(Number).find((p) => p && p !== pid && readProcess(p)?.pgrp === pid));
    await db.pool.query("update services set desired_status = 'disabled' where name = 'stubborn'");
    const began = Date.now();
    const result = await pass();
    assert.equal(result.stopped, 1);
    assert.ok(Date.now() - began >= 700, "it waited the grace period");
    assert.ok(!alive(pid!) && !alive(child), "the whole group is gone");
  });

  it("forced stop sends SIGKILL at once", async () => {
    const port = await freePort();
    ctx = reconcileContext(db.pool, host, { policy: { stopGraceMs: 5000 } });
    await addService(db.pool, { name: "stubborn", host, port, args: [fixture, "--ignore-term"] });
    const running = await passUntil("stubborn", "running");
    const began = Date.now();
    const outcome = await stopService(ctx, running, { force: true });
    assert.deepEqual(outcome, { status: "done" });
    assert.ok(Date.now() - began < 2000);
    assert.ok(!alive(running.pid!));
  });

  it("fails a start whose command does not exist, with a readable error", async () => {
    await addService(db.pool, { name: "ghost", host, port: await freePort(), command: "/nonexistent/bin/agent" });
    const result = await pass();
    assert.equal(result.failed.length, 1);
    assert.match(result.failed[0]!.error, /could not start service ghost: program \/nonexistent\/bin\/agent does not exist on this host/);
    const ghost = await row(db.pool, "ghost");
    assert.equal(ghost?.status, "crashed");
    assert.equal(ghost?.consecutive_failures, 1);
  });
});

describe("crashes", () => {
  it("restarts a crashed service after its back-off and records the exit code", async () => {
    const port = await freePort();
    // Up for 1.5 s before it crashes: passUntil must see it running first, and on a loaded
    // machine a pass (plus its 100 ms pause) can take longer than a shorter life, so the first
    // crash would go unseen and the counts below would start at a later crash.
    await addService(db.pool, { name: "flaky", host, port, args: [fixture, "--crash-after", "1500"] });
    const first = await passUntil("flaky", "running");
    await waitFor("the crash", () => !alive(first.pid!));
    await waitFor("the exit code", async () => (await row(db.pool, "flaky"))?.last_exit_code === 3);
    const crashed = await pass();
    assert.equal(crashed.restarted, 0, "not before the back-off");
    const recorded = await row(db.pool, "flaky");
    assert.equal(recorded?.status, "crashed");
    assert.equal(recorded?.consecutive_failures, 1);
    assert.match(recorded?.last_error ?? "", /exit code 3/);
    await new Promise((resolve) => setTimeout(resolve, 150));
    const restarted = await pass();
    assert.equal(restarted.restarted, 1);
    const again = await row(db.pool, "flaky");
    assert.equal(again?.restart_count, 1);
    assert.notEqual(again?.pid, first.pid);
  });

  it("backs off a crash loop, then marks it failed and leaves it alone until its command changes", async () => {
    const port = await freePort();
    ctx = reconcileContext(db.pool, host, { policy: { maxRapidFailures: 3, backoffBaseMs: 50 } });
    await addService(db.pool, { name: "loop", host, port, args: [fixture, "--crash-after", "50"] });
    // failure count -> the back-off the pass set, bounded by when the pass began and ended
    // (under load a pass takes a while; the back-off is counted from a moment within it)
    const delays = new Map<number, { min: number; max: number }>();
    const failed = await waitFor("failed", async () => {
      const before = Date.now();
      await pass();
      const after = Date.now();
      const current = await row(db.pool, "loop");
      if (current?.backoff_until && !delays.has(current.consecutive_failures)) {
        delays.set(current.consecutive_failures, { min: current.backoff_until.getTime() - after, max: current.backoff_until.getTime() - before });
      }
      return current?.status === "failed" ? current : null;
    }, 15_000, 30);
    const within = (failures: number, expected: number) => {
      const delay = delays.get(failures);
      return delay !== undefined && delay.min <= expected + 15 && delay.max >= expected - 15;
    };
    assert.ok(within(1, 50) && within(2, 100), `the delay doubles: ${JSON.stringify([...delays])}`);
    for (let i = 0; i < 3; i += 1) assert.equal((await pass()).actions.length, 0, "failed: left alone");
    await db.pool.query("update services set args = $1 where name = 'loop'", [[fixture]]);
    const reset = await row(db.pool, "loop");
    assert.equal(reset?.status, "stopped");
    assert.equal(reset?.consecutive_failures, 0);
    await passUntil("loop", "running");
  });

  it("stops and counts a start that never opens its port", async () => {
    ctx = reconcileContext(db.pool, host, { policy: { startTimeoutMs: 300 } });
    await addService(db.pool, { name: "mute", host, port: await freePort(), args: [fixture, "--no-listen"] });
    await pass();
    const { pid } = await waitFor("a pid", async () => {
      const current = await row(db.pool, "mute");
      return current?.pid ? current : null;
    });
    await new Promise((resolve) => setTimeout(resolve, 400));
    const result = await pass();
    assert.deepEqual(result.actions.map((a) => a.action), ["stop"]);
    assert.deepEqual(result.failed, [], "the stop itself succeeded");
    assert.ok(!alive(pid!), `pid ${pid} gone after the stop (${JSON.stringify(result.actions)}, row: ${JSON.stringify(await row(db.pool, "mute"))})`);
    const mute = await row(db.pool, "mute");
    assert.equal(mute?.consecutive_failures, 1);
    assert.match(mute?.last_error ?? "", /did not open port/);
  });
});

describe("never kills what is not ours", () => {
  it("PID reuse: a recorded pid now belonging to another process is not signalled", async () => {
    const stranger = await startForeign([], await freePort());
    const info = readProcess(stranger.pid!)!;
    const port = await freePort();
    await addService(db.pool, { name: "reused", host, port, desired: "disabled" });
    await db.pool.query("update services set status = 'running', pid = $1, process_start_ticks = $2, boot_id = $3 where name = 'reused'", [stranger.pid, String(BigInt(info.startTicks) - 7n), bootId()]);
    const result = await pass();
    assert.deepEqual(result.actions.map((a) => [a.action, a.runtime]), [["cleanup-db", "crashed"]]);
    assert.ok(alive(stranger.pid!), "the stranger survived");
    assert.equal(await row(db.pool, "reused"), undefined);
    // the same, enabled: a new process is started, the stranger is still untouched
    await addService(db.pool, { name: "reused", host, port });
    await db.pool.query("update services set status = 'running', pid = $1, process_start_ticks = $2, boot_id = $3 where name = 'reused'", [stranger.pid, String(BigInt(info.startTicks) - 7n), bootId()]);
    ctx = reconcileContext(db.pool, host, { policy: { backoffBaseMs: 1 } });
    const running = await passUntil("reused", "running");
    assert.notEqual(running.pid, stranger.pid);
    assert.ok(alive(stranger.pid!));
  });

  it("rows with impossible pids (0, 1, -1, 2^31-1) are never signalled", async () => {
    for (const [i, pid] of [0, 1, -1, 2_147_483_647].entries()) {
      await addService(db.pool, { name: `bad${i}`, host, port: await freePort(), desired: "disabled" });
      await db.pool.query("update services set status = 'running', pid = $2, process_start_ticks = $3, boot_id = $4 where name = $1", [`bad${i}`, pid, readProcess(1)?.startTicks ?? "1", bootId()]);
    }
    const result = await pass();
    assert.equal(result.cleanedUp, 4, "forgotten, not signalled");
    assert.ok(alive(1) || !fs.existsSync("/proc/1"));
  });

  it("a foreign process on the service's port is reported as a conflict, never killed", async () => {
    const port = await freePort();
    const squatter = await startForeign([], port);
    await addService(db.pool, { name: "blocked", host, port });
    const result = await pass();
    assert.equal(result.failed.length, 1);
    assert.equal(result.failed[0]!.action, "restart");
    assert.match(result.failed[0]!.error, new RegExp(`port conflict: port ${port} is held by pid ${squatter.pid}`));
    const blocked = await row(db.pool, "blocked");
    assert.equal(blocked?.status, "orphaned");
    assert.ok(blocked?.backoff_until, "it retries later");
    await db.pool.query("update services set desired_status = 'disabled' where name = 'blocked'");
    const cleanup = await pass();
    assert.deepEqual(cleanup.failed.map((f) => f.action), ["cleanup-process"]);
    assert.ok(alive(squatter.pid!), "the squatter survived both");
    assert.ok(await portAnswers(port));
  });

  it("an orphan that carries this service's marker is stopped by cleanup-process", async () => {
    const port = await freePort();
    await addService(db.pool, { name: "lost", host, port });
    const { pid } = await passUntil("lost", "running");
    // the row forgets its process (e.g. a restore from backup); the process still runs
    await db.pool.query("update services set desired_status = 'disabled', pid = null, status = 'stopped' where name = 'lost'");
    const result = await pass();
    assert.deepEqual(result.actions.map((a) => [a.action, a.outcome]), [["cleanup-process", "done"]]);
    assert.ok(!alive(pid!));
    assert.equal(await portAnswers(port), false);
  });

  it("protected ports: nothing is started there, and nothing listening there is signalled", async () => {
    const port = await freePort();
    const guarded = await freePort();
    await addService(db.pool, { name: "web", host, port, args: [fixture, "--extra-port", String(guarded)] });
    const { pid } = await passUntil("web", "running");
    ctx = reconcileContext(db.pool, host, { protectedPorts: [guarded] });
    await db.pool.query("update services set desired_status = 'disabled' where name = 'web'");
    const result = await pass();
    assert.deepEqual(result.actions.map((a) => [a.action, a.outcome]), [["stop", "refused"]]);
    assert.match(result.failed[0]!.error, new RegExp(`protected port ${guarded}`));
    assert.ok(alive(pid!));
    assert.match((await row(db.pool, "web"))?.last_error ?? "", /protected/);

    const holderPort = await freePort();
    const holder = await startForeign([], holderPort);
    await addService(db.pool, { name: "onpg", host, port: holderPort });
    const none = await pass(reconcileContext(db.pool, host, { protectedPorts: [holderPort] }));
    assert.ok(!none.actions.some((a) => a.name === "onpg"), "nothing is done on a protected port");
    assert.match((await row(db.pool, "onpg"))?.last_error ?? "", /protected/);
    assert.ok(alive(holder.pid!));
  });

  it("a pass is skipped while another node of the same host holds the host lock", async () => {
    await addService(db.pool, { name: "web", host, port: await freePort() });
    const other = await db.pool.connect();
    try {
      assert.ok(await tryLockHost(other, host));
      const skipped = await pass();
      assert.match(skipped.skipped ?? "", /another node/);
      assert.equal(skipped.started, 0);
      await unlockHost(other, host);
    } finally {
      other.release();
    }
    assert.equal((await pass()).started, 1);
  });
});
