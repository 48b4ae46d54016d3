import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { defineJob, SchedulerError, startScheduler, type JobResult, type ScheduledJob } from "../src/index.ts";
import { listMigrations } from "../src/engine/db/migrate.ts";
import { createTestDatabase, testLogger, useTestDatabase } from "./helpers/db.ts";

const db = useTestDatabase();

describe("library API: an application embeds the scheduler and adds its own job", () => {
  it("runs the application's job on the application's pool, with events and history", async () => {
    await db.pool.query("create table if not exists app_reports (id serial primary key, label text)");
    const buildReport = defineJob({
      name: "build_report",
      description: "Writes a report row",
      payload: { label: z.string().min(1) },
      async run({ db: conn, payload, enforce }): Promise<JobResult> {
        if (enforce) await conn.query("insert into app_reports (label) values ($1)", [payload.label]);
        return { itemsProcessed: 1, itemsFailed: 0, message: `report ${payload.label}` };
      },
    });
    const scheduler = await startScheduler({
      pool: db.pool,
      jobs: [buildReport],
      taskDirectory: null,
      crontab: "# Nightly report.\n0 4 * * * build_report {label: 'nightly'}",
      bootstrapJobs: [],
      logger: testLogger,
    });
    const seen: string[] = [];
    scheduler.events.on("job:success", (event: { task: string }) => seen.push(event.task));

    const { run } = await scheduler.runJob("build_report", { label: "adhoc" }, { wait: true });
    assert.equal(run?.status, "success");
    assert.equal(run?.message, "report adhoc");
    assert.deepEqual(seen, ["build_report"]);
    const reports = await db.pool.query("select label from app_reports");
    assert.deepEqual(reports.rows, [{ label: "adhoc" }]);

    const { rows } = await db.pool.query<ScheduledJob>("select * from scheduled_jobs");
    assert.equal(rows[0]!.job_name, "build_report");
    assert.equal(rows[0]!.description, "Nightly report.");
    assert.deepEqual(rows[0]!.payload, { label: "nightly" });

    // The entry's payload is merged under the request's fields: an empty label is still refused.
    await assert.rejects(() => scheduler.runJob("build_report", { label: "" }), (error: unknown) => error instanceof SchedulerError && /label/.test(error.message));
    await scheduler.stop();
    // the application's pool is the application's: still usable after stop()
    assert.equal((await db.pool.query("select 1 as ok")).rows[0].ok, 1);
  });

  it("rejects a job name that graphile-worker could not schedule", () => {
    assert.throws(() => defineJob({ name: "bad name!", description: "", payload: {}, run: async () => ({ itemsProcessed: 0, itemsFailed: 0, message: "" }) }), /not a valid task identifier/);
  });

  it("runs the engine alone with platform: false: its own schema, the application's jobs, nothing of the platform", async () => {
    const bare = await createTestDatabase({ migrate: false });
    try {
      const ping = defineJob({ name: "ping", description: "Answers", payload: {}, run: async () => ({ itemsProcessed: 1, itemsFailed: 0, message: "pong" }) });
      const scheduler = await startScheduler({ platform: false, connectionString: bare.connectionString, jobs: [ping], logger: testLogger });
      try {
        assert.equal((await scheduler.runJob("ping", {}, { wait: true })).run?.message, "pong");
        await assert.rejects(() => scheduler.runJob("database_cleanup"), (error: unknown) => error instanceof SchedulerError && error.code === "unknown_job");
        assert.deepEqual(scheduler.schedules(), [], "no crontab unless one is given");
      } finally {
        await scheduler.stop();
      }
      const tables = await bare.pool.query("select table_name from information_schema.tables where table_schema = 'public' order by 1");
      assert.deepEqual(tables.rows.map((row) => row.table_name), ["scheduled_jobs"]);
      const migrations = await bare.pool.query("select version from scheduler.migrations order by 1");
      assert.deepEqual(migrations.rows.map((row) => row.version), listMigrations().map((migration) => migration.version), "the engine's migrations only");
      const queued = await bare.pool.query("select count(*)::int as n from scheduler.bootstrap_runs");
      assert.equal(queued.rows[0].n, 0, "no bootstrap job");
    } finally {
      await bare.drop();
    }
  });
});
