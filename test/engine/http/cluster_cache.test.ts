import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defineJob, startScheduler, type JobResult } from "../../../src/index.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { parsePrometheus, valueOf } from "../../helpers/prometheus.ts";

// The cluster-wide gauges are the same for every node: one node computes them per interval
// for the whole cluster (scheduler.cluster_gauges_cache), the others read what it computed,
// and scrapers arriving together never all compute them (an advisory lock, tried).

const db = useTestDatabase();
const ok = defineJob({ name: "cache_ok", description: "Succeeds", payload: {}, run: async (): Promise<JobResult> => ({ itemsProcessed: 1, itemsFailed: 0, message: "fine" }) });
const CRONTAB = "0 4 * * * cache_ok\n0 5 * * * cache_ok ?id=cache_second\n";
const LOCK = "select pg_advisory_xact_lock(hashtextextended('systemprompt-scheduler:cluster-gauges', 0))";

const computedAt = async () => (await db.pool.query<{ at: Date }>("select computed_at as at from scheduler.cluster_gauges_cache")).rows[0]!.at.getTime();
const scrape = async (address: string | null) => parsePrometheus(await (await fetch(`http://${address}/metrics`)).text());

describe("cluster-wide gauges, computed once for the cluster", () => {
  it("are computed by the first node that scrapes and read by the others within the interval", async (t) => {
    const nodes = [];
    for (const nodeId of ["cache-a", "cache-b"]) {
      const node = await startScheduler({ pool: db.pool, jobs: [ok], taskDirectory: null, crontab: CRONTAB, bootstrapJobs: [], logger: testLogger, http: "127.0.0.1:0", metricsCacheMs: 60_000, platform: false, nodeId });
      t.after(() => node.stop());
      nodes.push(node);
    }
    await db.pool.query("update scheduler.cluster_gauges_cache set computed_at = '-infinity'");
    const fromA = await scrape(nodes[0]!.httpAddress);
    const computed = await computedAt();
    assert.ok(computed > Date.now() - 60_000, "node a computed them");
    const fromB = await scrape(nodes[1]!.httpAddress);
    assert.equal(await computedAt(), computed, "node b read them instead of computing them again");
    for (const metric of ["scheduler_schedule_next_run_timestamp_seconds", "scheduler_schedule_paused", "scheduler_schedule_late", "scheduler_schedule_missed_total"]) {
      for (const job of ["cache_ok", "cache_second"]) {
        assert.notEqual(valueOf(fromA, metric, { schedule: job }), undefined, `${metric} ${job}`);
        assert.equal(valueOf(fromB, metric, { schedule: job }), valueOf(fromA, metric, { schedule: job }), `${metric} ${job}`);
      }
    }
    assert.equal(valueOf(fromB, "scheduler_queue_jobs", { state: "waiting" }), valueOf(fromA, "scheduler_queue_jobs", { state: "waiting" }));
    assert.equal(valueOf(fromB, "scheduler_nodes", { state: "alive" }), 2, "each node counts the nodes itself");
  });

  it("are recomputed by one scraper when stale; while another holds the lock, the figures as they are serve", async (t) => {
    const node = await startScheduler({ pool: db.pool, jobs: [ok], taskDirectory: null, crontab: CRONTAB, bootstrapJobs: [], logger: testLogger, http: "127.0.0.1:0", metricsCacheMs: 0, platform: false, nodeId: "cache-c" });
    t.after(() => node.stop());
    assert.equal(valueOf(await scrape(node.httpAddress), "scheduler_schedule_paused", { schedule: "cache_second" }), 0);
    const before = await computedAt();

    const holder = await db.pool.connect();
    try {
      await holder.query("begin");
      await holder.query(LOCK);
      await db.pool.query("select scheduler.pause_job('cache_second', 'test')");
      const meanwhile = await scrape(node.httpAddress);
      assert.equal(valueOf(meanwhile, "scheduler_schedule_paused", { schedule: "cache_second" }), 0, "the cached figures, not a second computation");
      assert.equal(await computedAt(), before);
    } finally {
      await holder.query("commit");
      holder.release();
    }
    assert.equal(valueOf(await scrape(node.httpAddress), "scheduler_schedule_paused", { schedule: "cache_second" }), 1, "recomputed once the lock is free");
    assert.ok((await computedAt()) > before);
  });
});
