// The failover fixture itself (test/helpers/replication.ts, pgbouncer.ts repoint): a real
// primary and standby replicate, a standby refuses writes, a primary made read-only refuses
// them to connections already open, a promoted standby takes writes on a new timeline, and a
// PgBouncer re-pointed at it sends new clients there while old ones stay where they were.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { pgbouncerBinary, startPgBouncer, type PgBouncer } from "../../helpers/pgbouncer.ts";
import { replicationBinaries, startReplicatedCluster, type ReplicatedCluster, type Server } from "../../helpers/replication.ts";

const skip =
  process.env.TEST_SCENARIOS === "skip"
    ? "TEST_SCENARIOS=skip: failover scenarios run in the other pass"
    : !replicationBinaries
      ? "PostgreSQL 15 server binaries (initdb, pg_ctl, pg_basebackup, postgres) not found in /usr/lib/postgresql/15/bin: apt-get install postgresql-15, or set PG_REPLICATION_BINARIES"
      : !pgbouncerBinary
        ? "pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)"
        : false;

const READ_ONLY = { code: "25006" };

const clients: pg.Client[] = [];
async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  // A server that goes away under an idle client must not crash the test process.
  client.on("error", () => {});
  await client.connect();
  clients.push(client);
  return client;
}

async function one<T>(url: string, sql: string): Promise<T> {
  const client = await connect(url);
  try {
    return (await client.query(sql)).rows[0] as T;
  } finally {
    await client.end();
  }
}

const portOf = async (client: pg.Client) => Number((await client.query("select current_setting('port') as port")).rows[0].port);
const timelineOf = async (server: Server) => parseInt((await one<{ file: string }>(server.url(), "select pg_walfile_name(pg_current_wal_lsn()) as file")).file.slice(0, 8), 16);

describe("replication fixture", { skip }, () => {
  const clusters: ReplicatedCluster[] = [];
  const bouncers: PgBouncer[] = [];

  after(async () => {
    await Promise.all(clients.map((client) => client.end().catch(() => {})));
    await Promise.all(bouncers.map((bouncer) => bouncer.stop()));
    await Promise.all(clusters.map((cluster) => cluster.stop()));
  });

  describe("a crash of the primary", () => {
    let cluster: ReplicatedCluster;
    let startMs = 0;
    before(async () => {
      const starting = Date.now();
      cluster = await startReplicatedCluster({ standbys: 1, synchronous: true, databases: ["app"] });
      startMs = Date.now() - starting;
      clusters.push(cluster);
    });

    it("starts a primary and a synchronous standby that replays its writes", async (t) => {
      t.diagnostic(`cluster start (primary + synchronous standby): ${startMs} ms`);
      const [standby] = cluster.standbys;
      assert.ok(standby);
      assert.deepEqual(
        (await (await connect(cluster.primary.url())).query("select application_name, state, sync_state from pg_stat_replication")).rows,
        [{ application_name: standby.name, state: "streaming", sync_state: "sync" }],
      );
      const primary = await connect(cluster.primary.url("app"));
      await primary.query("create table note (id int primary key, body text)");
      await primary.query("insert into note values (1, 'written on the primary')");
      await cluster.caughtUp();
      assert.deepEqual((await one<{ body: string }>(standby.url("app"), "select body from note where id = 1")).body, "written on the primary");
    });

    it("has a standby in recovery that refuses writes with 25006", async () => {
      const standby = await connect(cluster.standbys[0]!.url("app"));
      assert.equal((await standby.query("select pg_is_in_recovery() as recovery")).rows[0].recovery, true);
      await assert.rejects(standby.query("insert into note values (2, 'on the standby')"), READ_ONLY);
    });

    it("promotes the standby after the primary crashed (new timeline), and a re-pointed PgBouncer sends new clients to it", async (t) => {
      const bouncer = await startPgBouncer("session", { target: { host: "127.0.0.1", port: cluster.primary.port } });
      bouncers.push(bouncer);
      const early = await connect(bouncer.urlFor("app"));
      const oldPrimary = cluster.primary;
      const standby = cluster.standbys[0]!;
      assert.equal(await portOf(early), oldPrimary.port);
      const timeline = await timelineOf(oldPrimary);

      await cluster.crashPrimary();
      assert.equal(oldPrimary.running(), false);
      const promoting = Date.now();
      const acceptedAt = await cluster.promote();
      t.diagnostic(`promote: first write accepted ${acceptedAt - promoting} ms after pg_ctl promote began`);
      assert.equal(cluster.primary, standby);
      assert.deepEqual(cluster.standbys, []);
      assert.ok((await timelineOf(standby)) > timeline, "the promoted standby is on a later timeline");
      assert.equal((await one<{ recovery: boolean }>(standby.url(), "select pg_is_in_recovery() as recovery")).recovery, false);
      // The synchronous setting stayed behind: a commit here does not wait for a standby.
      assert.equal((await one<{ names: string }>(standby.url(), "select current_setting('synchronous_standby_names') as names")).names, "");
      await one(standby.url("app"), "insert into note values (3, 'after the failover')");

      const repointing = Date.now();
      await bouncer.repoint({ host: "127.0.0.1", port: standby.port });
      t.diagnostic(`repoint: ${Date.now() - repointing} ms`);
      const late = await connect(bouncer.urlFor("app"));
      assert.equal(await portOf(late), standby.port);
      assert.equal((await late.query("select count(*)::int as n from note")).rows[0].n, 2);
      // The early client's server is gone with the crash: it is not moved behind its back.
      await assert.rejects(early.query("select 1"));
    });
  });

  describe("a demotion (read-only primary, connections kept)", () => {
    let cluster: ReplicatedCluster;
    before(async () => {
      cluster = await startReplicatedCluster({ standbys: 1, databases: ["app"] });
      clusters.push(cluster);
    });

    it("refuses writes on open connections once read-only; after promote and repoint, old clients stay on the old server, new ones reach the new primary", async () => {
      const oldPrimary = cluster.primary;
      const standby = cluster.standbys[0]!;
      const bouncer = await startPgBouncer("session", { target: { host: "127.0.0.1", port: oldPrimary.port } });
      bouncers.push(bouncer);
      const direct = await connect(oldPrimary.url("app"));
      await direct.query("create table note (id int primary key, body text)");
      const early = await connect(bouncer.urlFor("app"));
      await early.query("insert into note values (1, 'through the pooler')");

      await cluster.makeReadOnly(oldPrimary);
      await assert.rejects(direct.query("insert into note values (2, 'direct, after demotion')"), READ_ONLY);
      await assert.rejects(early.query("insert into note values (3, 'pooled, after demotion')"), READ_ONLY);
      assert.equal((await direct.query("select pg_is_in_recovery() as recovery")).rows[0].recovery, false, "read-only, yet not a standby");

      await cluster.caughtUp();
      await cluster.promote();
      await bouncer.repoint({ host: "127.0.0.1", port: standby.port });
      const late = await connect(bouncer.urlFor("app"));
      assert.equal(await portOf(late), standby.port);
      await late.query("insert into note values (4, 'on the new primary')");
      assert.equal(oldPrimary.running(), true);
      assert.equal(await portOf(early), oldPrimary.port, "the early client still reaches the old primary");
      await assert.rejects(early.query("insert into note values (5, 'pooled, still on the old primary')"), READ_ONLY);
    });
  });
});
