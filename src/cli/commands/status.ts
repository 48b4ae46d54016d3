import { readSql } from "../../engine/db/sql-file.ts";
import type { Command } from "../command.ts";
import { formatCell, renderTable, toJson } from "../table.ts";

const START_DELAY = readSql(import.meta.url, "start_delay.sql");

/** Runs, and beside them the ticks that were not runs: skipped by ?overlap=skip, missed. */
function runsCell(row: { run_count: number; skipped_count: number; missed_count: number }): string {
  const notRun = [Number(row.skipped_count) > 0 ? `${row.skipped_count} skipped` : "", Number(row.missed_count) > 0 ? `${row.missed_count} missed` : ""].filter(Boolean);
  return notRun.length > 0 ? `${row.run_count} (${notRun.join(", ")})` : String(row.run_count);
}

export const statusCommand: Command = {
  name: "status",
  readsOnly: true,
  summary: "every scheduled job with its last and next run, and the live nodes",
  usage: `systemprompt-scheduler status [--json]

ENABLED is "PAUSED" when the entry or its task is paused (every run would be skipped, so
there is no next run); who paused it, when and why follow the table. TZ is the zone the
SCHEDULE is read in (?tz=, else SCHEDULER_TIMEZONE); times are UTC. NEXT RUN is the tick
(an entry with ?jitter= starts up to that much later). STATUS is the last run's, "(dry run)"
when it changed nothing (the last success that did the entry's work follows the table). RUNS
counts runs (ticks and manual runs), with the ticks skipped by ?overlap=skip and the ticks
missed (no node was running, and fill= did not reach back) apart; ATTEMPTS counts their
attempts (each retry is one more) and how many failed. LATE is "LATE" while a tick has
waited longer than the entry's grace (?grace=, 60s by default) with no run started for it, a
later tick, or the tick recorded missed.`,
  options: { json: { type: "boolean" } },
  async run(ctx, args) {
    const pool = await ctx.pool();
    const { rows } = await pool.query(
      `select job_name, task, schedule, timezone, overlap, jitter_ms, enabled, last_run, last_status, last_run_dry_run, last_success, next_run,
              run_count, attempt_count, success_count, failure_count, skipped_count, missed_count, late, late_since, grace_ms, last_duration_ms,
              last_error, description, paused_as, paused_at, paused_by, pause_reason
       from scheduled_jobs order by job_name`,
    );
    const nodes = await pool.query(
      `select node_id, host, last_heartbeat_at, crontab_rejected_at, crontab_error from scheduler.nodes
       where stopped_at is null and last_heartbeat_at > now() - make_interval(secs => $1::float8 / 1000) order by node_id`,
      [ctx.config.SCHEDULER_NODE_DEAD_AFTER_MS],
    );
    // Past their timeout, their function not returned (src/engine/jobs/execute.ts), on a node
    // still alive: each holds a worker and its task's lock.
    const stuck = await pool.query(
      `select r.id, r.job_name, r.node_id, r.started_at, r.finished_at as deadline_at from scheduler.job_runs r
       join scheduler.nodes n on n.node_id = r.node_id
       where r.details->>'stuck' = 'true' and n.stopped_at is null and n.dead_at is null order by r.id`,
    );
    if (args.values.json) {
      // Tick precision (start minus tick, jitter excluded) over each schedule's last 100 ticks.
      const delays = new Map((await pool.query<{ job_name: string; p99_ms: number; ticks: number }>(START_DELAY)).rows.map((row) => [row.job_name, row]));
      const jobs = rows.map((row) => ({ ...row, start_delay_p99_ms: delays.get(row.job_name)?.p99_ms ?? null, start_delay_ticks: delays.get(row.job_name)?.ticks ?? 0 }));
      ctx.print(toJson({ jobs, liveNodes: nodes.rows, stuckRuns: stuck.rows }));
      return 0;
    }
    // First: the schedule below is not what the crontab file on disk says.
    for (const node of nodes.rows.filter((candidate) => candidate.crontab_error)) {
      const problems = String(node.crontab_error).split("\n").map((line) => line.trim()).filter(Boolean).join(" ");
      ctx.print(`crontab rejected at ${formatCell(node.crontab_rejected_at)} on ${node.node_id}: ${problems}; the previous schedule is in force\n`);
    }
    ctx.print(
      renderTable(
        rows.map((row) => ({
          ...row,
          enabled: row.enabled ? "yes" : "PAUSED",
          late: row.late ? "LATE" : "",
          last_status: row.last_status && row.last_run_dry_run ? `${row.last_status} (dry run)` : row.last_status,
          runs: runsCell(row),
          attempts: `${row.attempt_count} (${row.failure_count} failed)`,
        })),
        [
          { key: "job_name", header: "JOB" },
          { key: "schedule", header: "SCHEDULE" },
          { key: "timezone", header: "TZ" },
          { key: "enabled", header: "ENABLED" },
          { key: "last_run", header: "LAST RUN" },
          { key: "last_status", header: "STATUS" },
          { key: "last_duration_ms", header: "MS" },
          { key: "next_run", header: "NEXT RUN" },
          { key: "late", header: "LATE" },
          { key: "runs", header: "RUNS" },
          { key: "attempts", header: "ATTEMPTS" },
        ],
      ),
    );
    for (const row of rows.filter((candidate) => candidate.paused_as)) {
      const what = row.paused_as === row.job_name ? "paused" : `paused through its task '${row.paused_as}'`;
      ctx.print(`\n${row.job_name}: ${what} by ${row.paused_by ?? "?"} at ${formatCell(row.paused_at)}${row.pause_reason ? `: ${row.pause_reason}` : ""}`);
    }
    for (const row of rows.filter((candidate) => candidate.last_run_dry_run)) {
      ctx.print(`\n${row.job_name}: its last run was a dry run (it changed nothing); last success that did its work: ${row.last_success ? formatCell(row.last_success) : "never"}`);
    }
    for (const row of rows.filter((candidate) => candidate.late)) {
      ctx.print(`\n${row.job_name}: late: its tick at ${formatCell(row.late_since)} has not started after a grace of ${Number(row.grace_ms) / 1000}s`);
    }
    for (const run of stuck.rows) {
      ctx.print(`\n${run.job_name}: STUCK: run ${run.id} on ${run.node_id} passed its timeout at ${formatCell(run.deadline_at)} and its function has not returned; it holds a worker and the task's lock (restart that node to free them)`);
    }
    const failing = rows.filter((row) => row.last_error);
    for (const row of failing) ctx.print(`\n${row.job_name}: last error: ${row.last_error}`);
    ctx.print(`\nlive nodes: ${nodes.rows.length === 0 ? "none (start one with `systemprompt-scheduler start`)" : nodes.rows.map((node) => node.node_id).join(", ")}`);
    return 0;
  },
};
