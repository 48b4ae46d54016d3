import os from "node:os";
import path from "node:path";
import { projectRoot } from "../../db/sql-file.ts";
import type { Queryable } from "../../db/pool.ts";
import { SchedulerError } from "../../errors.ts";
import { defaultRuntime } from "../../jobs/runtime.ts";
import { waitForRun } from "../../history/wait.ts";
import { enqueueRun, parsePayloadOption, publishedEntry, requestForEntry, requestForTask, type EntryForRun, type RunRequest } from "../../runner/run-request.ts";
import { loadTasks, type LoadedTasks } from "../../runner/tasks.ts";
import type { CliContext, Command } from "../command.ts";
import { toJson } from "../table.ts";

/** The task files this CLI sees (SCHEDULER_TASKS_DIR): for payload checks before queueing. */
async function localTasks(ctx: CliContext): Promise<LoadedTasks> {
  const directory = path.resolve(ctx.config.SCHEDULER_TASKS_DIR ?? path.join(projectRoot, "tasks"));
  return loadTasks(directory, [], defaultRuntime());
}

const LIVE_NODES = `
select count(*)::int as live, count(*) filter (where $1 = any (tasks))::int as knowing,
       count(*) filter (where tasks is null)::int as silent
from scheduler.nodes
where stopped_at is null and dead_at is null and last_heartbeat_at > now() - make_interval(secs => $2::float8 / 1000)`;

/** How many live nodes there are, and how many can run `task`. */
async function liveNodesFor(ctx: CliContext, db: Queryable, task: string): Promise<{ live: number; knowing: number; silent: number }> {
  const { rows } = await db.query<{ live: number; knowing: number; silent: number }>(LIVE_NODES, [task, ctx.config.SCHEDULER_NODE_DEAD_AFTER_MS]);
  return rows[0]!;
}

function needName(name: string | undefined, command: string): string {
  if (!name) throw new SchedulerError("usage", `${command} needs a job name`, { hint: `systemprompt-scheduler ${command} JOB (see \`status\` for names)`, exitCode: 2 });
  return name;
}

interface NamedJob {
  name: string;
  task: string;
  /** The entry named, as the nodes published it; null when the name is a task. */
  entry: EntryForRun | null;
  /** The task files this CLI sees (for payload checks). */
  tasks: LoadedTasks;
  /** The live nodes, and how many of them can run the task. */
  nodes: { live: number; knowing: number; silent: number };
}

/**
 * A job name is a crontab entry's identifier (as the nodes published it), a task of the
 * local task files, or a task a live node can run (a library user's job).
 */
async function resolveJobName(ctx: CliContext, raw: string | undefined, command: string): Promise<NamedJob> {
  const name = needName(raw, command);
  const db = await ctx.pool();
  const entry = await publishedEntry(db, name);
  const task = entry?.task ?? name;
  const tasks = await localTasks(ctx);
  const nodes = await liveNodesFor(ctx, db, task);
  if (entry || tasks.names().has(name) || nodes.knowing > 0) return { name, task, entry, tasks, nodes };
  throw new SchedulerError("unknown_job", `no job or crontab entry named '${name}'`, { hint: `tasks: ${[...tasks.names()].sort().join(", ")} (\`status\` lists the entries)`, exitCode: 2 });
}

function describeRun(request: RunRequest): string {
  return request.jobName === request.task ? request.task : `${request.jobName} (task ${request.task})`;
}

export const runCommand: Command = {
  name: "run",
  summary: "queue a run of a job now (optionally wait for its outcome)",
  usage: `systemprompt-scheduler run JOB [--payload JSON] [--wait] [--timeout SECONDS] [--json]

JOB is a crontab entry's identifier or a task. An entry's run uses that entry's payload,
queue, job key and attempts, and is recorded under the entry's identifier; a task's run
gets the task's queue, one waiting run at most and 3 attempts.

--payload  JSON fields merged over the entry's payload (a task has none), e.g.
           '{"enforce": false}' for a dry run
--wait     wait for the run to finish; the exit code is its outcome (0 success, 1 failed, 3 timeout)
--timeout  seconds to wait with --wait (default 600)
--json     print {job_id, job_name, task} (and with --wait the run's outcome) as JSON`,
  options: { payload: { type: "string", short: "p" }, wait: { type: "boolean", short: "w" }, timeout: { type: "string" }, json: { type: "boolean" } },
  maxPositionals: 1,
  async run(ctx, args) {
    const overrides = parsePayloadOption(args.values.payload as string | undefined);
    const timeoutSeconds = Number(args.values.timeout ?? 600);
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new SchedulerError("usage", `--timeout must be a positive number of seconds, got '${args.values.timeout}'`, { exitCode: 2 });
    const { name, entry, tasks, nodes } = await resolveJobName(ctx, args.positionals[0], "run");
    const pool = await ctx.pool();
    const request = entry ? requestForEntry(entry, overrides) : requestForTask(name, overrides);
    // Nodes that predate task lists (tasks is null) may know it: only refuse when every live node said what it runs.
    if (nodes.live > 0 && nodes.knowing === 0 && nodes.silent === 0) {
      throw new SchedulerError("task_not_loaded", `no live node can run task '${request.task}': its task file is not loaded on any of the ${nodes.live} live node(s)`, {
        hint: `add tasks/${request.task}.ts to the nodes' task folder (SCHEDULER_TASKS_DIR); nodes load new task files within SCHEDULER_CRONTAB_POLL_MS`,
        exitCode: 2,
      });
    }
    if (nodes.live === 0 && args.values.wait) {
      throw new SchedulerError("no_live_node", `no scheduler node is running, so '${describeRun(request)}' would never finish`, {
        hint: "start one with `systemprompt-scheduler start` (or queue without --wait: the run waits for a node)",
        exitCode: 2,
      });
    }
    const problem = tasks.checkPayload(request.task, request.fields);
    if (problem) throw new SchedulerError("invalid_payload", problem, { exitCode: 2 });
    const paused = await pool.query("select job_name from scheduler.paused_jobs where job_name = any($1::text[])", [[request.jobName, request.task]]);
    if (paused.rows.length > 0) {
      throw new SchedulerError("job_paused", `job '${paused.rows[0].job_name}' is paused; a run would be skipped`, { hint: `systemprompt-scheduler resume ${paused.rows[0].job_name}`, exitCode: 2 });
    }

    const jobId = Number(await enqueueRun(pool, request));
    const queued = { job_id: jobId, job_name: request.jobName, task: request.task };
    if (!args.values.wait) {
      if (args.values.json) ctx.print(toJson(queued));
      else ctx.print(`queued ${describeRun(request)} as job ${jobId}${nodes.live === 0 ? " (no node is running: it runs when one starts)" : ""}`);
      return 0;
    }
    const { id: _runId, ...run } = await waitForRun(pool, String(jobId), timeoutSeconds * 1000);
    if (args.values.json) ctx.print(toJson({ ...queued, ...run, items_processed: Number(run.items_processed), items_failed: Number(run.items_failed) }));
    else ctx.print(`${describeRun(request)}: ${run.status} in ${run.duration_ms ?? "?"} ms — ${run.error ?? run.message ?? ""} (items ${run.items_processed}, failed ${run.items_failed})`);
    return run.status === "success" ? 0 : 1;
  },
};

export const pauseCommand: Command = {
  name: "pause",
  summary: "pause a job on every node (its runs are skipped until resumed)",
  usage: `systemprompt-scheduler pause JOB [--reason TEXT]

JOB is a task (pauses every entry of it) or a crontab entry's identifier. Who paused it,
when and why show in \`status\` and the scheduled_jobs view.`,
  options: { reason: { type: "string" } },
  maxPositionals: 1,
  async run(ctx, args) {
    const { name } = await resolveJobName(ctx, args.positionals[0], "pause");
    const who = `${os.userInfo().username}@${os.hostname()}`;
    const { rows } = await (await ctx.pool()).query("select scheduler.pause_job($1, $2, $3) as paused", [name, args.values.reason ?? null, who]);
    ctx.print(rows[0]?.paused ? `paused ${name}` : `${name} was already paused`);
    return 0;
  },
};

export const resumeCommand: Command = {
  name: "resume",
  summary: "resume a paused job",
  usage: "systemprompt-scheduler resume JOB",
  maxPositionals: 1,
  async run(ctx, args) {
    const { name } = await resolveJobName(ctx, args.positionals[0], "resume");
    const { rows } = await (await ctx.pool()).query("select scheduler.resume_job($1) as resumed", [name]);
    ctx.print(rows[0]?.resumed ? `resumed ${name}` : `${name} was not paused`);
    return 0;
  },
};

export { resolveJobName };
