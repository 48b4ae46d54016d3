// The connector on this test's server: hosts tried in order, a server that refuses writes
// refused for connections that write (and waited for), read-only episodes making earlier
// connections stale, and the pool's clients coming from it. Failovers between real servers
// are in test/engine/cluster/failover.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pg from "pg";
import { writerRequirement } from "../../../src/engine/db/connect.ts";
import { createConnector, NoServerError } from "../../../src/engine/db/connector.ts";
import { createPool, waitForDatabase } from "../../../src/engine/db/pool.ts";
import { isReadOnlyError, ServerRoleError } from "../../../src/engine/db/server-role.ts";
import { SchedulerError } from "../../../src/engine/errors.ts";
import { createLogger } from "../../../src/engine/log.ts";
import { adminUrl, useTestDatabase } from "../../helpers/db.ts";

const db = useTestDatabase({ migrate: false });

/** This test's database URL with `hosts` in place of its host list. */
function urlWithHosts(hosts: string, query = ""): string {
  const url = new URL(db.connectionString);
  const userinfo = url.username ? `${url.username}${url.password ? `:${url.password}` : ""}@` : "";
  return `postgres://${userinfo}${hosts}${url.pathname}${query}`;
}
const real = () => {
  const url = new URL(db.connectionString);
  return `${url.hostname}:${url.port || 5432}`;
};
const backendPort = async (client: pg.ClientBase) => Number((await client.query("select current_setting('port') as port")).rows[0].port);

/** A logger that keeps what it was told. */
function recordingLogger() {
  const lines: { level: string; msg: string }[] = [];
  const logger = createLogger("warn", false);
  for (const level of ["warn", "info", "error"] as const) {
    (logger as unknown as Record<string, unknown>)[level] = (fields: unknown, msg?: string) => lines.push({ level, msg: typeof fields === "string" ? fields : (msg ?? "") });
  }
  return { logger, lines };
}

async function withReadOnlyDatabase<T>(fn: () => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`alter database ${db.name} set default_transaction_read_only = on`);
  try {
    return await fn();
  } finally {
    await admin.query(`alter database ${db.name} reset default_transaction_read_only`);
    await admin.end();
  }
}

describe("connector", () => {
  it("tries the hosts in order: a host that refuses connections is skipped, and tried last for a while", async () => {
    const connector = createConnector(urlWithHosts(`127.0.0.1:1,${real()}`, "?target_session_attrs=read-write"));
    assert.equal(connector.target, `127.0.0.1:1,${real()}/${db.name}`);
    const client = await connector.connect();
    assert.equal(connector.hostOf(client), real());
    assert.equal(await backendPort(client), Number(real().split(":")[1]));
    await client.end();
    // The pool's clients go to the host that worked, without trying the dead one first.
    const pool = createPool(connector, { max: 2 });
    const started = Date.now();
    const { rows } = await pool.query("select 1 as one");
    assert.equal(rows[0].one, 1);
    assert.ok(Date.now() - started < 2000);
    await pool.end();
  });

  it("names every host and what was wrong with it when none will do", async () => {
    const connector = createConnector(urlWithHosts("127.0.0.1:1,127.0.0.1:2"));
    await assert.rejects(connector.connect(), (error: unknown) => {
      assert.ok(error instanceof NoServerError);
      assert.match(error.message, /no server among 2 host\(s\): 127\.0\.0\.1:1 unreachable \(.*ECONNREFUSED.*\); 127\.0\.0\.1:2 unreachable/);
      return true;
    });
  });

  it("keeps a single host's own error, as pg reports it", async () => {
    await assert.rejects(createConnector(urlWithHosts("127.0.0.1:1")).connect(), /ECONNREFUSED/);
  });

  it("refuses a server that takes no writes for connections that write, but not for those that only read", async () => {
    await withReadOnlyDatabase(async () => {
      const writer = createConnector(db.connectionString, { requirement: "read-write" });
      await assert.rejects(writer.connect(), (error: unknown) => {
        assert.ok(error instanceof ServerRoleError);
        assert.ok(isReadOnlyError(error));
        assert.match(error.message, /is read-only \(default_transaction_read_only = on/);
        return true;
      });
      const reader = createConnector(db.connectionString);
      assert.equal(reader.requirement, "any");
      const client = await reader.connect();
      await client.end();
      const readOnly = await createConnector(urlWithHosts(real(), "?target_session_attrs=read-only")).connect();
      await readOnly.end();
    });
    const primary = await createConnector(urlWithHosts(real(), "?target_session_attrs=read-only")).connect().catch((error: unknown) => error);
    assert.match(String(primary), /takes writes \(not read-only\)/);
  });

  it("waits for a primary, says what it waits for, and connects once there is one", async () => {
    const { logger, lines } = recordingLogger();
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    await admin.query(`alter database ${db.name} set default_transaction_read_only = on`);
    const connector = createConnector(db.connectionString, { requirement: "read-write", logger });
    const waiting = waitForDatabase(connector, { logger, timeoutMs: 1000, primaryTimeoutMs: 20_000 });
    // Waits past the unreachable-server time-out, for as long as only a read-only server answers.
    const early = await Promise.race([waiting.then(() => "connected"), new Promise((resolve) => setTimeout(resolve, 1500, "still waiting"))]);
    assert.equal(early, "still waiting");
    await admin.query(`alter database ${db.name} reset default_transaction_read_only`);
    await admin.end();
    await waiting;
    assert.match(lines.find((line) => line.level === "warn")?.msg ?? "", /^waiting for a primary: .* is read-only/);
  });

  it("gives up waiting for a primary with the reason and the fix", async () => {
    await withReadOnlyDatabase(async () => {
      const connector = createConnector(db.connectionString, { requirement: "read-write" });
      await assert.rejects(waitForDatabase(connector, { timeoutMs: 500, primaryTimeoutMs: 1200 }), (error: unknown) => {
        assert.ok(error instanceof SchedulerError);
        assert.equal(error.code, "no_primary");
        assert.match(error.message, /no primary at .* after \d+ s: .* is read-only/);
        assert.match(error.describe(), /fix: promote a standby/);
        return true;
      });
    });
  });

  it("makes every connection of a read-only episode stale, warns once, and says when it is over", async () => {
    const { logger, lines } = recordingLogger();
    const connector = createConnector(db.connectionString, { requirement: "read-write", logger });
    const pool = createPool(connector, { max: 3 });
    const clients = await Promise.all([pool.connect(), pool.connect()]);
    let episodes = 0;
    connector.onReadOnly(() => (episodes += 1));
    const failure = Object.assign(new Error("cannot execute UPDATE in a read-only transaction"), { code: "25006" });
    connector.readOnly(clients[0]!, failure);
    connector.readOnly(clients[1]!, failure); // the same episode
    assert.equal(episodes, 1);
    assert.ok(clients.every((client) => connector.isStale(client)));
    assert.equal(lines.filter((line) => line.level === "warn").length, 1);
    assert.match(lines[0]!.msg, /^database at .* refuses writes \(a standby or a demoted primary\); reconnecting to the primary$/);
    for (const client of clients) client.release(true);
    const fresh = await pool.connect();
    assert.equal(connector.isStale(fresh), false);
    fresh.release();
    assert.match(lines.at(-1)!.msg, /the read-only episode is over/);
    await pool.end();
  });

  it("notices at once when a session's server reports it turned read-only", async () => {
    const connector = createConnector(db.connectionString, { requirement: "read-write" });
    const client = await connector.connect();
    let episodes = 0;
    connector.onReadOnly(() => (episodes += 1));
    // A GUC the server reports (as it does after a reload that makes it read-only).
    await client.query("set default_transaction_read_only = on");
    assert.equal(episodes, 1);
    assert.equal(connector.isStale(client), true);
    await client.end();
  });

  it("refuses, before any connection, a node or a command that writes asked to use a standby", () => {
    for (const wanted of ["standby", "read-only", "prefer-standby"] as const) {
      assert.throws(() => writerRequirement(wanted, "a node"), (error: unknown) => {
        assert.ok(error instanceof SchedulerError);
        assert.equal(error.exitCode, 2);
        assert.match(error.message, new RegExp(`target_session_attrs=${wanted}, but a node writes`));
        return true;
      });
    }
    assert.equal(writerRequirement("any", "a node"), "read-write");
    assert.equal(writerRequirement("primary", "a node"), "primary");
  });
});
