import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { Task, TaskList } from "graphile-worker";
import { SchedulerError } from "../errors.ts";
import { definitionOf, type DefinedJob } from "../jobs/define.ts";
import type { JobRuntime } from "../jobs/runtime.ts";

export interface LoadedTasks {
  taskList: TaskList;
  /** Jobs made with defineJob, by task name (for descriptions, `run` validation). */
  jobs: Map<string, DefinedJob>;
}

/**
 * Loads every task file of a directory (one job per file, named after it) and binds
 * the ones made with defineJob to this runner's runtime. Plain graphile-worker task
 * functions run as they are, without history. `extraJobs` (library users) win over
 * files of the same name.
 */
export async function loadTasks(directory: string | null, extraJobs: DefinedJob[], runtime: JobRuntime): Promise<LoadedTasks> {
  const taskList: TaskList = {};
  const jobs = new Map<string, DefinedJob>();
  if (directory) {
    const files = fs.existsSync(directory) ? fs.readdirSync(directory).filter((file) => /\.(ts|js|mjs)$/.test(file) && !file.endsWith(".d.ts")).sort() : [];
    for (const file of files) {
      const name = file.replace(/\.(ts|js|mjs)$/, "");
      const full = path.join(directory, file);
      let loaded: { default?: unknown };
      try {
        loaded = (await import(pathToFileURL(full).href)) as { default?: unknown };
      } catch (error) {
        throw new SchedulerError("task_load_failed", `task file ${full} failed to load: ${(error as Error).message}`, { cause: error });
      }
      if (typeof loaded.default !== "function") {
        throw new SchedulerError("bad_task_file", `task file ${full} has no default export function`, {
          hint: "export default a job's .task (see tasks/cleanup_inactive_sessions.ts) or a graphile-worker task function",
        });
      }
      const job = definitionOf(loaded.default);
      if (job && job.name !== name) {
        throw new SchedulerError("task_name_mismatch", `task file ${full} exports job '${job.name}'`, { hint: `rename the file to ${job.name}.ts or the job to '${name}'` });
      }
      if (job) jobs.set(name, job);
      taskList[name] = job ? job.bind(runtime) : (loaded.default as Task);
    }
  }
  for (const job of extraJobs) {
    jobs.set(job.name, job);
    taskList[job.name] = job.bind(runtime);
  }
  return { taskList, jobs };
}
