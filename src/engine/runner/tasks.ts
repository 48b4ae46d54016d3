import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { Task, TaskList } from "graphile-worker";
import type { TaskCatalog } from "../crontab/parse.ts";
import { errorMessage, SchedulerError } from "../errors.ts";
import { addLiveTask } from "../graphile/internals.ts";
import { definitionOf, type DefinedJob } from "../jobs/define.ts";
import { describePayloadErrors } from "../jobs/payload.ts";
import { wrapPlainTask } from "../jobs/plain.ts";
import type { JobRuntime } from "../jobs/runtime.ts";

// The tasks a node runs: every file of its task folder (one job per file, named after it)
// and the jobs a library user passes. The task list is the very object graphile-worker
// runs from, so a task file added later is loaded into it live (refresh).

export interface LoadedTasks extends TaskCatalog {
  /** The task list graphile-worker runs (kept current by refresh). */
  taskList: TaskList;
  /** Jobs made with defineJob, by task name (for payload checks and descriptions). */
  jobs: Map<string, DefinedJob>;
  /** Whether a dry run of `task` can be asked for: its job takes `enforce` (every defineJob job). */
  hasDryRun(task: string): boolean;
  /**
   * Loads task files added to the folder since the last look; returns their names. A file
   * that fails to load is reported (once) and skipped: the node keeps running.
   */
  refresh(): Promise<string[]>;
}

const TASK_FILE = /\.(ts|js|mjs)$/;

function taskFiles(directory: string): string[] {
  if (!fs.existsSync(directory)) return [];
  return fs.readdirSync(directory).filter((file) => TASK_FILE.test(file) && !file.endsWith(".d.ts")).sort();
}

/** Imports one task file: a defineJob job, or a plain graphile-worker task function. */
async function importTaskFile(full: string, name: string, version?: number): Promise<{ job?: DefinedJob; task: Task }> {
  let loaded: { default?: unknown };
  // Node keeps a module that failed to load in its cache; a new version of the URL tries again.
  const url = pathToFileURL(full).href + (version === undefined ? "" : `?v=${version}`);
  try {
    loaded = (await import(url)) as { default?: unknown };
  } catch (error) {
    throw new SchedulerError("task_load_failed", `task file ${full} failed to load: ${errorMessage(error)}`, { cause: error, exitCode: 2 });
  }
  if (typeof loaded.default !== "function") {
    throw new SchedulerError("bad_task_file", `task file ${full} has no default export function`, {
      hint: "export default a job's .task (see tasks/cleanup_inactive_sessions.ts) or a graphile-worker task function",
      exitCode: 2,
    });
  }
  const job = definitionOf(loaded.default);
  if (job && job.name !== name) {
    throw new SchedulerError("task_name_mismatch", `task file ${full} exports job '${job.name}'`, { hint: `rename the file to ${job.name}.ts or the job to '${name}'`, exitCode: 2 });
  }
  return { job, task: loaded.default as Task };
}

/**
 * Loads the task folder and binds jobs made with defineJob to this runner's runtime; plain
 * task functions get the light wrapper (pause check and history). `extraJobs` (library
 * users) win over files of the same name. A bad file at start is an error (exit 2).
 */
export async function loadTasks(directory: string | null, extraJobs: DefinedJob[], runtime: JobRuntime, logger = runtime.logger): Promise<LoadedTasks> {
  const taskList: TaskList = {};
  const jobs = new Map<string, DefinedJob>();
  const seenFiles = new Set<string>();
  const reported = new Map<string, string>();

  const add = (name: string, loaded: { job?: DefinedJob; task: Task }) => {
    if (loaded.job) jobs.set(name, loaded.job);
    addLiveTask(taskList, name, loaded.job ? loaded.job.bind(runtime) : wrapPlainTask(name, loaded.task, runtime));
  };

  if (directory) {
    for (const file of taskFiles(directory)) {
      seenFiles.add(file);
      add(file.replace(TASK_FILE, ""), await importTaskFile(path.join(directory, file), file.replace(TASK_FILE, "")));
    }
  }
  const extraNames = new Set(extraJobs.map((job) => job.name));
  for (const job of extraJobs) add(job.name, { job, task: job.task });

  return {
    taskList,
    jobs,
    names: () => new Set(Object.keys(taskList)),
    checkPayload(task, payload) {
      const job = jobs.get(task);
      if (!job) return null;
      const parsed = job.schema.safeParse(payload);
      return parsed.success ? null : describePayloadErrors(task, parsed.error);
    },
    hasDryRun: (task) => (jobs.get(task)?.schema as { shape?: Record<string, unknown> } | undefined)?.shape?.enforce !== undefined,
    // A plain task function has no run lock (graphile-worker's semantics): its runs may overlap.
    isExclusive: (task) => jobs.get(task)?.exclusive ?? false,
    async refresh() {
      if (!directory) return [];
      const added: string[] = [];
      for (const file of taskFiles(directory)) {
        if (seenFiles.has(file)) continue;
        const name = file.replace(TASK_FILE, "");
        const full = path.join(directory, file);
        if (extraNames.has(name) || taskList[name]) {
          seenFiles.add(file);
          continue;
        }
        try {
          add(name, await importTaskFile(full, name, fs.statSync(full).mtimeMs));
          seenFiles.add(file);
          reported.delete(file);
          added.push(name);
          logger.info({ task: name, file: full }, "new task file loaded");
        } catch (error) {
          // Not marked seen: a half-written file is tried again on the next look.
          const message = errorMessage(error);
          if (reported.get(file) !== message) logger.error({ file: full, error: message }, "a new task file could not be loaded; it is retried when it changes");
          reported.set(file, message);
        }
      }
      return added;
    },
  };
}
