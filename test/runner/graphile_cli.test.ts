import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import { projectRoot } from "../../src/db/sql-file.ts";
import { useTestDatabase } from "../helpers/db.ts";

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
