import type { Queryable } from "../db/pool.ts";
import { readSql } from "../db/sql-file.ts";
import type { CrontabEntry } from "./parse.ts";

const syncSchedules = readSql(import.meta.url, "sync_schedules.sql");

/** Publishes the loaded crontab to scheduler.schedules, which the scheduled_jobs view reads. */
export async function publishSchedules(db: Queryable, entries: CrontabEntry[], nodeId: string): Promise<{ removed: number; changed: number }> {
  const rows = entries.map((entry) => ({
    job_name: entry.identifier,
    task: entry.task,
    schedule: entry.schedule,
    description: entry.description,
    payload: entry.payload,
    options: {
      queue: entry.item.options.queueName ?? null,
      jobKey: entry.item.options.jobKey ?? null,
      jobKeyMode: entry.item.options.jobKeyMode ?? null,
      maxAttempts: entry.item.options.maxAttempts ?? null,
      backfillMs: entry.item.options.backfillPeriod,
      priority: entry.item.options.priority ?? null,
    },
    ...entry.fields,
    timezone: entry.timezone,
    overlap: entry.overlap,
    jitter_ms: entry.jitterMs,
    grace_ms: entry.graceMs,
  }));
  const { rows: result } = await db.query<{ removed: number; changed: number }>(syncSchedules, [JSON.stringify(rows), nodeId]);
  const outcome = result[0] ?? { removed: 0, changed: 0 };
  // A changed entry starts counting its ticks anew: scheduled_jobs' remembered next ticks follow.
  if (outcome.changed > 0) await db.query("select scheduler.refresh_due_ticks(null)");
  return outcome;
}
