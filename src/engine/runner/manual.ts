import type { Queryable } from "../db/pool.ts";
import { readSql } from "../db/sql-file.ts";
import { SchedulerError } from "../errors.ts";
import { enqueueRun, publishedEntry, requestForEntry, requestForTask, type EntryForRun, type RunRequest } from "./run-request.ts";
import { didYouMean } from "../suggest.ts";

// What an operator does to a job by hand — run it now, pause it, resume it — with the same
// checks whoever asks: the CLI (`run`, `pause`, `resume`) and the dashboard's actions. A
// name is resolved against what the nodes published, so both see the same jobs. Each change
// is recorded in the audit trail, under `actor`, by the statement that makes it.

const LIVE_NODES = readSql(import.meta.url, "live_nodes.sql");
const PAUSED = "select job_name from scheduler.paused_jobs where job_name = any($1::text[])";

/** The tasks the asker can check payloads against (its own task files, or the node's). */
export interface TaskChecker {
  names(): ReadonlySet<string>;
  checkPayload(task: string, payload: unknown): string | null;
}

export interface LiveNodes {
  live: number;
  /** Live nodes that list the task among the ones they run. */
  knowing: number;
  /** Live nodes that predate task lists (they may know it). */
  silent: number;
}

export interface NamedJob {
  name: string;
  task: string;
  /** The entry named, as the nodes published it; null when the name is a task. */
  entry: EntryForRun | null;
  nodes: LiveNodes;
}

export async function liveNodesFor(db: Queryable, task: string, deadAfterMs: number): Promise<LiveNodes> {
  const { rows } = await db.query<LiveNodes>(LIVE_NODES, [task, deadAfterMs]);
  return rows[0]!;
}

/**
 * A job name is a crontab entry's identifier (as the nodes published it), a task the asker
 * knows, or a task a live node can run (a library user's job); anything else is refused.
 */
export async function resolveJob(db: Queryable, name: string, tasks: TaskChecker, deadAfterMs: number): Promise<NamedJob> {
  const entry = await publishedEntry(db, name);
  const task = entry?.task ?? name;
  const nodes = await liveNodesFor(db, task, deadAfterMs);
  if (entry || tasks.names().has(name) || nodes.knowing > 0) return { name, task, entry, nodes };
  throw unknownJob(name, tasks.names(), null);
}

/** The refusal of a name that is neither a task nor a crontab entry: what there is, and the closest. `entries` null: not known here (`status` lists them). */
export function unknownJob(name: string, taskNames: Iterable<string>, entries: string[] | null): SchedulerError {
  const tasks = [...taskNames].sort();
  return new SchedulerError("unknown_job", `no job or crontab entry named '${name}';${didYouMean(name, [...tasks, ...(entries ?? [])]) || " it is neither a task nor an entry"}`, {
    hint: `tasks: ${tasks.join(", ")}${entries === null ? " (`status` lists the entries)" : `; entries: ${[...entries].sort().join(", ") || "(none)"}`}`,
    exitCode: 2,
  });
}

export function describeRun(request: RunRequest): string {
  return request.jobName === request.task ? request.task : `${request.jobName} (task ${request.task})`;
}

/**
 * Queues a run of `job` now with `overrides` merged over its entry's payload, unless no live
 * node can run it, the payload is wrong for the job, or the job is paused (its run would
 * only be skipped). `needLiveNode`: refuse when no node runs at all (a caller that waits).
 */
export async function queueManualRun(
  db: Queryable,
  job: NamedJob,
  overrides: Record<string, unknown>,
  tasks: TaskChecker,
  options: { actor: string; needLiveNode?: boolean },
): Promise<{ jobId: string; lastRunId: string; request: RunRequest }> {
  const request = job.entry ? requestForEntry(job.entry, overrides) : requestForTask(job.name, overrides);
  const { nodes } = job;
  // Nodes that predate task lists (tasks is null) may know it: only refuse when every live node said what it runs.
  if (nodes.live > 0 && nodes.knowing === 0 && nodes.silent === 0) {
    throw new SchedulerError("task_not_loaded", `no live node can run task '${request.task}': its task file is not loaded on any of the ${nodes.live} live node(s)`, {
      hint: `add tasks/${request.task}.ts to the nodes' task folder (SCHEDULER_TASKS_DIR); nodes load new task files within SCHEDULER_CRONTAB_POLL_MS`,
      exitCode: 2,
    });
  }
  if (nodes.live === 0 && options.needLiveNode) {
    throw new SchedulerError("no_live_node", `no scheduler node is running, so '${describeRun(request)}' would never finish`, {
      hint: "start one with `systemprompt-scheduler start` (or queue without --wait: the run waits for a node)",
      exitCode: 2,
    });
  }
  const problem = tasks.checkPayload(request.task, request.fields);
  if (problem) throw new SchedulerError("invalid_payload", problem, { exitCode: 2 });
  const paused = await db.query<{ job_name: string }>(PAUSED, [[request.jobName, request.task]]);
  if (paused.rows.length > 0) {
    const name = paused.rows[0]!.job_name;
    throw new SchedulerError("job_paused", `job '${name}' is paused; a run would be skipped`, { hint: `systemprompt-scheduler resume ${name}`, exitCode: 2 });
  }
  return { ...(await enqueueRun(db, request, { actor: options.actor, overrides })), request };
}

/** Pauses a task (every entry of it) or one entry on every node; false when it was paused already. */
export async function pauseJob(db: Queryable, name: string, reason: string | null, actor: string): Promise<boolean> {
  const { rows } = await db.query<{ paused: boolean | null }>("select scheduler.pause_job($1, $2, $3) as paused", [name, reason, actor]);
  return Boolean(rows[0]?.paused);
}

/** Resumes a paused task or entry; false when it was not paused. */
export async function resumeJob(db: Queryable, name: string, actor: string): Promise<boolean> {
  const { rows } = await db.query<{ resumed: boolean | null }>("select scheduler.resume_job($1, $2) as resumed", [name, actor]);
  return Boolean(rows[0]?.resumed);
}
