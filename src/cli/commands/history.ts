import { limitOption, type Command } from "../command.ts";
import { renderTable, toJson } from "../table.ts";
import { resolveJobName } from "./jobs.ts";

export const historyCommand: Command = {
  name: "history",
  readsOnly: true,
  summary: "recent runs (one row per attempt), newest first",
  usage: `systemprompt-scheduler history [JOB] [--limit N] [--json]

JOB is a crontab entry's identifier or a task (all its entries' runs); an unknown name is an error.`,
  options: { limit: { type: "string", short: "n" }, json: { type: "boolean" } },
  maxPositionals: 1,
  async run(ctx, args) {
    const limit = limitOption(args.values.limit, 20, 10_000);
    const job = args.positionals[0] ?? null;
    const pool = await ctx.pool();
    if (job !== null) {
      // A job that ran once but is no longer scheduled still has a history.
      const { rows: known } = await pool.query("select 1 from scheduler.job_runs where job_name = $1 or task = $1 limit 1", [job]);
      if (known.length === 0) await resolveJobName(ctx, job, "history");
    }
    const { rows } = await pool.query(
      `select id, job_id, job_name, task, attempt, node_id, scheduled_for, started_at, finished_at, duration_ms, status,
              dry_run, items_processed, items_failed, message, error, details, jitter_ms
       from scheduler.job_runs
       where $1::text is null or job_name = $1 or task = $1
       order by started_at desc, id desc
       limit $2`,
      [job, limit],
    );
    if (args.values.json) {
      ctx.print(toJson(rows));
      return 0;
    }
    ctx.print(
      renderTable(
        rows.map((row) => ({ ...row, status: row.dry_run ? `${row.status} (dry run)` : row.status, outcome: row.error ?? row.message })),
        [
          { key: "started_at", header: "STARTED" },
          { key: "job_name", header: "JOB" },
          { key: "attempt", header: "TRY" },
          { key: "status", header: "STATUS" },
          { key: "duration_ms", header: "MS" },
          { key: "items_processed", header: "ITEMS" },
          { key: "items_failed", header: "FAILED" },
          { key: "node_id", header: "NODE" },
          { key: "outcome", header: "MESSAGE / ERROR" },
        ],
      ),
    );
    return 0;
  },
};
