import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { projectRoot } from "../../../src/engine/db/sql-file.ts";
import { parseCrontabOrThrow } from "../../../src/engine/crontab/parse.ts";
import { publishSchedules } from "../../../src/engine/crontab/sync.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

// The stock graphile-worker CLI, run in the project root, picks up graphile.config.ts:
// our task files run through the job wrapper, so history is still recorded.

const db = useTestDatabase();

describe("plain `npx graphile-worker` in the project root", () => {
  it("runs our task files and records their runs", async () => {
    await db.pool.query(`select graphile_worker.add_job('cleanup_inactive_sessions', '{"enforce": false}')`);
    await db.pool.query(`select graphile_worker.add_job('cleanup_inactive_sessions', '{"inactiveHours": -1}')`);
    const result = spawnSync(process.execPath, [path.join(projectRoot, "node_modules/graphile-worker/dist/cli.js"), "--once"], {
      cwd: projectRoot,
      env: { ...process.env, DATABASE_URL: db.connectionString, LOG_LEVEL: "silent" },
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(result.status, 0, result.stderr);
    // The two jobs run side by side: the successful dry run first, whichever finished first.
    const { rows } = await db.pool.query("select status, dry_run, error, node_id from scheduler.job_runs where task = 'cleanup_inactive_sessions' order by (status = 'success') desc, id");
    assert.equal(rows.length, 2, JSON.stringify(rows));
    assert.deepEqual([rows[0].status, rows[0].dry_run], ["success", true]);
    assert.equal(rows[1].status, "failed");
    assert.match(rows[1].error, /field 'inactiveHours'/);
    const left = await db.pool.query("select attempts, max_attempts from graphile_worker.jobs");
    assert.equal(left.rows.length, 1, "the invalid one stays, permanently failed");
    assert.equal(left.rows[0].attempts, left.rows[0].max_attempts);
  });
});

describe("plain `npx graphile-worker` and missed ticks", () => {
  it("records the ticks its cron jumps over as missed, once each, with no node", async () => {
    // As a node published it an hour ago: the entry runs every minute and may back-fill 2 minutes.
    const line = "* * * * * cleanup_inactive_sessions ?id=stock_minutely&fill=2m {enforce: false}";
    await publishSchedules(db.pool, parseCrontabOrThrow(line, "test crontab"), "test");
    await db.pool.query("update scheduler.schedules set updated_at = now() - interval '1 hour' where job_name = 'stock_minutely'");
    const { rows: [{ last }] } = await db.pool.query("select date_trunc('minute', now()) - interval '10 minutes' as last");
    await db.pool.query("insert into graphile_worker._private_known_crontabs (identifier, known_since, last_execution) values ('stock_minutely', now() - interval '1 hour', $1)", [last]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-stock-cron-"));
    fs.writeFileSync(path.join(dir, "crontab"), `${line}\n`);
    const worker = spawn(process.execPath, [path.join(projectRoot, "node_modules/graphile-worker/dist/cli.js"), "--crontab", path.join(dir, "crontab")], {
      cwd: projectRoot,
      env: { ...process.env, DATABASE_URL: db.connectionString, LOG_LEVEL: "silent" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    worker.stderr!.on("data", (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => worker.once("exit", resolve));
    try {
      // The back-fill moves known_crontabs past the outage: the trigger records what it passed over.
      await eventually(async () => {
        // (Under the stock CLI a run is recorded under its task's name, not the entry's id.)
        const { rows } = await db.pool.query("select count(*)::int as n from scheduler.job_runs where task = 'cleanup_inactive_sessions' and status = 'success'");
        return rows[0].n >= 2;
      }, { timeoutMs: 60_000, what: "the stock worker's back-filled ticks to run" }).catch((error: Error) => {
        throw new Error(`${error.message}; its stderr: ${stderr}`);
      });
    } finally {
      worker.kill("SIGINT");
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const { rows } = await db.pool.query<{ scheduled_for: Date; status: string; node_id: string | null }>(
      "select scheduled_for, status, node_id from scheduler.job_runs where task = 'cleanup_inactive_sessions' and scheduled_for > $1 order by scheduled_for, id",
      [last],
    );
    const missed = rows.filter((row) => row.status === "missed");
    const ran = rows.filter((row) => row.status === "success");
    assert.ok(missed.length >= 7, `the minutes fill=2m does not reach back to are missed: ${JSON.stringify(rows)}`);
    assert.deepEqual(missed.map((row) => row.scheduled_for.getTime()), missed.map((_, i) => (last as Date).getTime() + (i + 1) * 60_000), "one row per minute from the outage's start, in order, none twice");
    assert.ok(missed.at(-1)!.scheduled_for < ran[0]!.scheduled_for, "the back-filled ticks come after the missed ones");
    assert.equal(rows.length, missed.length + ran.length, "nothing but missed and run ticks");
    assert.ok(missed.every((row) => row.node_id === null), "no scheduler node queued them (the stock CLI registers none)");
    assert.equal(Number((await db.pool.query("select missed_count from scheduled_jobs where job_name = 'stock_minutely'")).rows[0].missed_count), missed.length);
  });
});
