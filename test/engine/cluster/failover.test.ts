// Nodes on a real PostgreSQL 15 primary with a streaming standby, put through failovers: the
// primary killed mid-work and the standby promoted (nodes on a multi-host URL); the primary
// turned read-only with the nodes' sessions kept while a cron tick falls, the new primary
// behind a re-pointed PgBouncer and in a multi-host list; a node started on a standby; hosts
// down or standbys first in the list. Heavy: CI runs this file once (TEST_SCENARIOS=skip on the
// second pass).
import assert from "node:assert/strict";
import { after, describe, it, type TestContext } from "node:test";
import pg from "pg";
import { createPool } from "../../../src/engine/db/pool.ts";
import type { ReplicatedCluster } from "../../helpers/replication.ts";
import { runCliProcess } from "../../helpers/cli.ts";
import { haproxyBinary, startHaProxy } from "../../helpers/haproxy.ts";
import { eventually, sleep } from "../../helpers/wait.ts";
import { DATABASE, effectCount, effectTally, failoverNode, hardFailover, multiHostUrl, queueEffects, scenarioSkip, startFailoverCluster, startPgBouncer } from "./failover-scenarios.ts";
import type { NodeProcess } from "./harness.ts";

const clusters: ReplicatedCluster[] = [];
const nodes: NodeProcess[] = [];
after(async () => {
  for (const node of nodes) node.kill("SIGKILL");
  await Promise.all(nodes.map((node) => node.exited));
  await Promise.all(clusters.map((cluster) => cluster.stop()));
});

async function cluster(options: { synchronous?: boolean } = {}): Promise<ReplicatedCluster> {
  const started = await startFailoverCluster(options);
  clusters.push(started);
  return started;
}

function node(name: string, url: string, env: Record<string, string> = {}): NodeProcess {
  const started = failoverNode(name, url, env);
  nodes.push(started);
  return started;
}

const query = async <R extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []) => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
};

const readOnlyWarnings = (subject: NodeProcess) => subject.logged(/reconnecting to the primary$/);

describe("a hard failover mid-work (synchronous standby, multi-host URL)", { skip: scenarioSkip() }, () => {
  it("loses no job, repeats only those in flight, keeps every node, and resumes within seconds of the promotion", async (t: TestContext) => {
    const servers = await cluster({ synchronous: true });
    const url = multiHostUrl([servers.primary, servers.standbys[0]!]);
    const pair = [node("hard-1", url), node("hard-2", url)];
    await Promise.all(pair.map((subject) => subject.started()));
    const result = await hardFailover(servers, { prefix: "hard", count: 3000, crashAfter: 600 });
    t.diagnostic(`${result.jobs} jobs: lost ${result.lost}, repeated ${result.repeated} (in flight at the crash: ${result.inFlight}); first job done ${result.resumeMs} ms after the promotion, all done after ${result.drainedMs} ms`);
    assert.equal(result.lost, 0, "every job's effect is on the new primary");
    assert.ok(result.repeated <= Math.max(result.inFlight, 8), `repeated ${result.repeated} > in flight ${result.inFlight}`);
    assert.ok(result.resumeMs < 10_000, `resumed ${result.resumeMs} ms after the promotion`);
    assert.deepEqual(pair.map((subject) => subject.exitCode), [undefined, undefined], "no node exited");
    const primary = servers.primary.url(DATABASE);
    // Nodes alive and reconnecting were not declared dead: silence counts from the promotion.
    await sleep(7000);
    assert.deepEqual(await query(primary, "select node_id from scheduler.rescues"), []);
    assert.deepEqual(await query(primary, "select id from graphile_worker.jobs where locked_at is not null"), [], "nothing left locked");
    const live = await query<{ node_id: string }>(primary, "select node_id from scheduler.nodes where stopped_at is null and dead_at is null and last_heartbeat_at > now() - interval '3 seconds' order by 1");
    assert.equal(live.length, 2, "both nodes beat on the new primary");
    // Each took its liveness lock again there.
    const locks = await query<{ n: number }>(primary, "select count(*)::int as n from pg_locks l join pg_stat_activity a using (pid) where l.locktype = 'advisory' and a.application_name like 'sps-node %' and l.granted");
    assert.ok(locks[0]!.n >= 2);
  });
});

describe("a primary turned read-only with the nodes' sessions kept, a new primary behind PgBouncer and in the host list", { skip: scenarioSkip({ pgbouncer: true }) }, () => {
  it("keeps every node, runs the tick that falls in the episode once, and lands all work on the new primary", async (t: TestContext) => {
    const servers = await cluster();
    const oldPrimary = servers.primary;
    const standby = servers.standbys[0]!;
    const bouncer = await startPgBouncer("session", { target: { host: "127.0.0.1", port: oldPrimary.port } });
    t.after(() => bouncer.stop());
    const viaBouncer = node("ro-bouncer", bouncer.urlFor(DATABASE));
    const viaList = node("ro-list", multiHostUrl([oldPrimary, standby]));
    await Promise.all([viaBouncer.started(), viaList.started()]);

    // The test's own pool follows the primary the way a node does.
    const db = createPool(multiHostUrl([oldPrimary, standby]), { max: 2 });
    db.on("error", () => {});
    t.after(() => db.end());
    let feeding = true;
    const tags: string[] = [];
    const feeder = (async () => {
      for (let i = 0; feeding; i++) {
        try {
          tags.push(...(await queueEffects(db, "ro", 5, i * 5)));
        } catch {
          // the primary is read-only or being promoted: these five were never queued
        }
        await sleep(100);
      }
    })();

    // Start the episode a few seconds before a minute boundary, so that a tick falls in it.
    const msToBoundary = 60_000 - (Date.now() % 60_000);
    if (msToBoundary < 4000 || msToBoundary > 8000) await sleep((msToBoundary + 60_000 - 6000) % 60_000);
    const boundary = new Date(Math.ceil(Date.now() / 60_000) * 60_000);
    await eventually(async () => (await effectCount(db, "ro")) >= 20, { timeoutMs: 30_000, what: "work before the episode" });
    await servers.makeReadOnly(oldPrimary);
    await servers.caughtUp();
    const promotedAt = await servers.promote(standby);
    await bouncer.repoint({ host: "127.0.0.1", port: standby.port });
    t.diagnostic(`read-only at ${new Date(promotedAt).toISOString()} (promoted), tick due at ${boundary.toISOString()}`);

    await eventually(async () => Date.now() > boundary.getTime() + 8000, { timeoutMs: 70_000, what: "the tick boundary to pass" });
    feeding = false;
    await feeder;
    const primary = standby.url(DATABASE);
    await eventually(async () => (await effectCount(db, "ro")) === tags.length, { timeoutMs: 60_000, what: `all ${tags.length} queued jobs done` });
    const tally = await effectTally(db, "ro", tags);
    assert.deepEqual(tally.lost, []);
    t.diagnostic(`${tags.length} jobs: repeated ${tally.repeated.length}; read-only warnings: ${viaBouncer.name} ${readOnlyWarnings(viaBouncer).length}, ${viaList.name} ${readOnlyWarnings(viaList).length}`);

    assert.deepEqual([viaBouncer.exitCode, viaList.exitCode], [undefined, undefined], "every node survives");
    const ticks = await query<{ status: string }>(primary, "select status from scheduler.job_runs where task = 'tick' and scheduled_for = $1", [boundary]);
    assert.deepEqual(ticks.map((row) => row.status), ["success"], "the tick in the episode ran once");
    // Every effect since the episode is on the new primary; the old one holds no node session.
    const stray = await query(primary, "select id from failover_effects where port <> $1 and at > to_timestamp($2::float8 / 1000)", [standby.port, promotedAt]);
    assert.deepEqual(stray, []);
    await eventually(async () => (await query<{ n: number }>(oldPrimary.url("postgres"), "select count(*)::int as n from pg_stat_activity where application_name like 'sps-node %'"))[0]!.n === 0, {
      timeoutMs: 15_000,
      what: "no node session left on the old primary",
    });
    for (const subject of [viaBouncer, viaList]) {
      assert.ok(readOnlyWarnings(subject).length >= 1 && readOnlyWarnings(subject).length <= 2, `${subject.name}: one warning per episode, not a flood (${readOnlyWarnings(subject).length})`);
      assert.equal(subject.logged(/worker_failed|graphile-worker stopped this node's worker pool/).length, 0);
    }
  });
});

describe("Patroni's HAProxy recipe: a primary killed mid-work behind HAProxy checking /primary", { skip: scenarioSkip() || (!haproxyBinary && "haproxy is not installed: apt-get install haproxy (.ci/run does)") }, () => {
  it("loses no job, keeps every node, and resumes once HAProxy routes to the promoted standby", async (t: TestContext) => {
    const servers = await cluster({ synchronous: true });
    const proxy = await startHaProxy([servers.primary, servers.standbys[0]!]);
    t.after(() => proxy.stop());
    await proxy.routesTo(servers.primary);
    const pair = [node("haproxy-1", proxy.urlFor(DATABASE)), node("haproxy-2", proxy.urlFor(DATABASE))];
    await Promise.all(pair.map((subject) => subject.started()));
    const result = await hardFailover(servers, { prefix: "haproxy", count: 2000, crashAfter: 400 });
    t.diagnostic(`${result.jobs} jobs: lost ${result.lost}, repeated ${result.repeated} (in flight at the crash: ${result.inFlight}); first job done ${result.resumeMs} ms after the promotion, all done after ${result.drainedMs} ms`);
    assert.equal(result.lost, 0);
    assert.ok(result.repeated <= Math.max(result.inFlight, 8), `repeated ${result.repeated} > in flight ${result.inFlight}`);
    assert.ok(result.resumeMs < 10_000, `resumed ${result.resumeMs} ms after the promotion`);
    assert.deepEqual(pair.map((subject) => subject.exitCode), [undefined, undefined], "no node exited");
  });
});

describe("a node that finds a standby", { skip: scenarioSkip() }, () => {
  it("waits for a primary when started on a standby, says so, and starts once the standby is promoted", async () => {
    const servers = await cluster();
    const standby = servers.standbys[0]!;
    const waiting = node("on-standby", `postgres://postgres@127.0.0.1:${standby.port}/${DATABASE}`);
    await eventually(async () => waiting.logged(/^waiting for a primary: 127\.0\.0\.1:\d+ is a standby \(in recovery\)/).length > 0, { timeoutMs: 30_000, what: "the node to say it waits for a primary" });
    assert.equal(waiting.exitCode, undefined, "still waiting");
    await servers.crashPrimary();
    await servers.promote(standby);
    await waiting.started(60_000);
  });

  it("gives up after SCHEDULER_DB_GIVE_UP_MS with the reason (exit 1)", async () => {
    const servers = await cluster();
    const standby = servers.standbys[0]!;
    const giving = node("gives-up", `postgres://postgres@127.0.0.1:${standby.port}/${DATABASE}`, {
      SCHEDULER_DB_GIVE_UP_MS: "3000",
      SCHEDULER_NODE_DEAD_AFTER_MS: "3000",
      SCHEDULER_HEARTBEAT_MS: "1000",
    });
    assert.equal(await giving.exited, 1);
    assert.match(giving.stderrTail, /no primary at 127\.0\.0\.1:\d+\/failover after \d+ s: 127\.0\.0\.1:\d+ is a standby \(in recovery\)/);
    assert.match(giving.stderrTail, /promote a standby/);
  });

  it("takes the first suitable host of a list: past a host that is down, and past a standby", async () => {
    const servers = await cluster();
    const primary = servers.primary;
    const standby = servers.standbys[0]!;
    const pastDown = node("past-down", `postgres://postgres@127.0.0.1:1,127.0.0.1:${primary.port}/${DATABASE}?target_session_attrs=read-write`);
    const pastStandby = node("past-standby", multiHostUrl([standby, primary]));
    await Promise.all([pastDown.started(), pastStandby.started()]);
    const sessions = await query<{ n: number }>(standby.url("postgres"), "select count(*)::int as n from pg_stat_activity where application_name like 'sps-node %'");
    assert.equal(sessions[0]!.n, 0, "no node session stays on the standby");

    // The CLI: reading commands may use the standby, writing ones say why they cannot.
    const onStandby = { DATABASE_URL: `postgres://postgres@127.0.0.1:${standby.port}/${DATABASE}` };
    await servers.caughtUp();
    const status = await runCliProcess(["status", "--json"], onStandby);
    assert.equal(status.code, 0, status.stderr);
    const nodesList = await runCliProcess(["nodes", "--json"], onStandby);
    assert.equal(nodesList.code, 0, nodesList.stderr);
    const paused = await runCliProcess(["pause", "effect"], { ...onStandby, SCHEDULER_DB_GIVE_UP_MS: "2000", SCHEDULER_NODE_DEAD_AFTER_MS: "2000", SCHEDULER_HEARTBEAT_MS: "500" });
    assert.notEqual(paused.code, 0);
    assert.match(paused.stderr, /is a standby \(in recovery\)/);
    const refused = await runCliProcess(["pause", "effect"], { DATABASE_URL: `${multiHostUrl([standby], "target_session_attrs=standby")}` });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /target_session_attrs=standby, but 'pause' writes/);
  });
});
