import type { Command } from "../command.ts";
import { formatCell, renderTable, toJson } from "../table.ts";

export const statusCommand: Command = {
  name: "status",
  summary: "every scheduled job with its last and next run, and the live nodes",
  usage: `systemprompt-scheduler status [--json]

ENABLED is "PAUSED" when the entry or its task is paused (every run would be skipped, so
there is no next run); who paused it, when and why follow the table.`,
  options: { json: { type: "boolean" } },
  async run(ctx, args) {
    const pool = await ctx.pool();
    const { rows } = await pool.query(
      `select job_name, task, schedule, enabled, last_run, last_status, next_run, run_count, success_count, failure_count,
              last_duration_ms, last_error, description, paused_as, paused_at, paused_by, pause_reason
       from scheduled_jobs order by job_name`,
    );
    const nodes = await pool.query(
      `select node_id, host, last_heartbeat_at from scheduler.nodes
       where stopped_at is null and last_heartbeat_at > now() - make_interval(secs => $1::float8 / 1000) order by node_id`,
      [ctx.config.SCHEDULER_NODE_DEAD_AFTER_MS],
    );
    if (args.values.json) {
      ctx.print(toJson({ jobs: rows, liveNodes: nodes.rows }));
      return 0;
    }
    ctx.print(
      renderTable(
        rows.map((row) => ({ ...row, enabled: row.enabled ? "yes" : "PAUSED", runs: `${row.run_count} (${row.failure_count} failed)` })),
        [
          { key: "job_name", header: "JOB" },
          { key: "schedule", header: "SCHEDULE" },
          { key: "enabled", header: "ENABLED" },
          { key: "last_run", header: "LAST RUN" },
          { key: "last_status", header: "STATUS" },
          { key: "last_duration_ms", header: "MS" },
          { key: "next_run", header: "NEXT RUN" },
          { key: "runs", header: "RUNS" },
        ],
      ),
    );
    for (const row of rows.filter((candidate) => candidate.paused_as)) {
      const what = row.paused_as === row.job_name ? "paused" : `paused through its task '${row.paused_as}'`;
      ctx.print(`\n${row.job_name}: ${what} by ${row.paused_by ?? "?"} at ${formatCell(row.paused_at)}${row.pause_reason ? `: ${row.pause_reason}` : ""}`);
    }
    const failing = rows.filter((row) => row.last_error);
    for (const row of failing) ctx.print(`\n${row.job_name}: last error: ${row.last_error}`);
    ctx.print(`\nlive nodes: ${nodes.rows.length === 0 ? "none (start one with `systemprompt-scheduler start`)" : nodes.rows.map((node) => node.node_id).join(", ")}`);
    return 0;
  },
};
