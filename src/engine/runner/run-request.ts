import type { Queryable } from "../db/pool.ts";
import { SchedulerError } from "../errors.ts";
import { withSendSpan } from "./send-span.ts";

// A request to run a job now, from the CLI (`run NAME`), the library (`runJob`) or a node's
// bootstrap. NAME is a crontab entry's identifier or a task. An entry is a unit of its own:
// its run gets the entry's payload (with the request's fields merged over it), queue, job
// key and attempts, and is recorded under the entry's identifier. A task alone gets the
// defaults the crontab would give it: its own queue, one waiting run at most, 3 attempts.

/** An entry as published in scheduler.schedules (or held by a running node). */
export interface EntryForRun {
  identifier: string;
  task: string;
  payload: Record<string, unknown> | null;
  queue: string | null;
  jobKey: string | null;
  jobKeyMode: string | null;
  maxAttempts: number | null;
  priority: number | null;
}

export interface RunRequest {
  /** What the run is recorded as: the entry's identifier, or the task. */
  jobName: string;
  task: string;
  /** The job's own fields (what its schema checks). */
  fields: Record<string, unknown>;
  queue: string | null;
  jobKey: string | null;
  jobKeyMode: string | null;
  maxAttempts: number;
  priority: number | null;
}

export function requestForEntry(entry: EntryForRun, overrides: Record<string, unknown> = {}): RunRequest {
  return {
    jobName: entry.identifier,
    task: entry.task,
    fields: { ...(entry.payload ?? {}), ...overrides },
    queue: entry.queue,
    jobKey: entry.jobKey,
    jobKeyMode: entry.jobKey === null ? null : (entry.jobKeyMode ?? "replace"),
    maxAttempts: entry.maxAttempts ?? 3,
    priority: entry.priority,
  };
}

export function requestForTask(task: string, overrides: Record<string, unknown> = {}): RunRequest {
  return { jobName: task, task, fields: { ...overrides }, queue: task, jobKey: `run:${task}`, jobKeyMode: "replace", maxAttempts: 3, priority: null };
}

/** Parses `--payload` text: a JSON object, or an error saying how to write one. */
export function parsePayloadOption(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch (error) {
    throw new SchedulerError("bad_payload_json", `--payload is not valid JSON: ${(error as Error).message}`, { hint: `quote it for the shell, e.g. --payload '{"enforce": false}'`, exitCode: 2 });
  }
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    throw new SchedulerError("bad_payload_json", "--payload must be a JSON object", { hint: `e.g. --payload '{"enforce": false}'`, exitCode: 2 });
  }
  return payload as Record<string, unknown>;
}

// With a job key, add_job may hand back an existing job (one waiting for its retry, say),
// whose earlier attempts have history rows already: `last_run_id` is the newest of them, read
// in the same statement, so a caller waiting for this run's outcome skips them. A run asked
// for by someone ($8, the actor) is recorded in the audit trail by the same statement; a
// node's own (bootstrap jobs) is not.
const ADD_JOB = `
with added as (
  select id from graphile_worker.add_job(
    $1, $2::json,
    queue_name => $3, max_attempts => $4, job_key => $5, job_key_mode => $6, priority => $7)
)
select added.id, (select coalesce(max(r.id), 0) from scheduler.job_runs r where r.job_id = added.id) as last_run_id,
       case when $8::text is not null then scheduler.audit_record($8, 'run', $9, jsonb_build_object('job_id', added.id) || $10::jsonb) end as audit_id
from added`;

export interface EnqueuedRun {
  /** graphile-worker's job id. */
  jobId: string;
  /** The newest history row of that job id before this run (0: none): waitForRun's `after`. */
  lastRunId: string;
}

/**
 * Queues the run, inside a trace span whose context the run's attempts link to (send-span.ts).
 * With `askedBy` (someone ran it by hand), the same statement records it in the audit trail:
 * the job, its task, the fields given over the entry's payload, dry run or not.
 */
export async function enqueueRun(db: Queryable, request: RunRequest, askedBy?: { actor: string; overrides: Record<string, unknown> }): Promise<EnqueuedRun> {
  return withSendSpan(request, async (creation) => {
    // `_schedule` makes the wrapper record the run under the entry's identifier.
    const payload = {
      ...request.fields,
      ...(request.jobName === request.task ? {} : { _schedule: request.jobName }),
      ...(creation ? { _trace: creation } : {}),
    };
    const detail = askedBy ? { task: request.task, payload: askedBy.overrides, dry_run: request.fields.enforce === false } : {};
    const { rows } = await db.query<{ id: string; last_run_id: string }>(ADD_JOB, [
      request.task,
      JSON.stringify(payload),
      request.queue,
      request.maxAttempts,
      request.jobKey,
      request.jobKeyMode,
      request.priority ?? 0,
      askedBy?.actor ?? null,
      request.jobName,
      JSON.stringify(detail),
    ]);
    return { jobId: rows[0]!.id, lastRunId: rows[0]!.last_run_id };
  });
}

/** The run-relevant part of a crontab entry a node holds. */
export function entryForRun(entry: { identifier: string; task: string; payload: Record<string, unknown> | null; item: { options: { queueName?: string; jobKey?: string; jobKeyMode?: string; maxAttempts?: number; priority?: number } } }): EntryForRun {
  const options = entry.item.options;
  return {
    identifier: entry.identifier,
    task: entry.task,
    payload: entry.payload,
    queue: options.queueName ?? null,
    jobKey: options.jobKey ?? null,
    jobKeyMode: options.jobKeyMode ?? null,
    maxAttempts: options.maxAttempts ?? null,
    priority: options.priority ?? null,
  };
}

const PUBLISHED_ENTRY = `
select job_name as identifier, task, payload,
       options->>'queue' as queue, options->>'jobKey' as "jobKey", options->>'jobKeyMode' as "jobKeyMode",
       (options->>'maxAttempts')::int as "maxAttempts", (options->>'priority')::int as priority
from scheduler.schedules where job_name = $1`;

/** An entry as the nodes published it (scheduler.schedules), for a process that has no crontab of its own. */
export async function publishedEntry(db: Queryable, identifier: string): Promise<EntryForRun | null> {
  const { rows } = await db.query<EntryForRun>(PUBLISHED_ENTRY, [identifier]);
  return rows[0] ?? null;
}
