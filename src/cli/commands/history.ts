import { SchedulerError } from "../../errors.ts";
import type { Command } from "../command.ts";
import { renderTable, toJson } from "../table.ts";

export const historyCommand: Command = {
  name: "history",
  summary: "recent runs (one row per attempt), newest first",
  usage: "systemprompt-scheduler history [JOB] [--limit N] [--json]",
  options: { limit: { type: "string", short: "n" }, json: { type: "boolean" } },
  async run(ctx, args) {
    const limit = Number(args.values.limit ?? 20);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      throw new SchedulerError("bad_limit", `--limit must be a whole number from 1 to 10000, got '${args.values.limit}'`, { exitCode: 2 });
    }
    const job = args.positionals[0] ?? null;
    const { rows } = await (await ctx.pool()).query(
      `select id, job_id, job_name, task, attempt, node_id, scheduled_for, started_at, finished_at, duration_ms, status,
              dry_run, items_processed, items_failed, message, error, details
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
