// Lets the stock CLI run this project: `npx graphile-worker` in the project root runs the
// task files in tasks/ and the crontab file beside this one. The task files carry our job
// wrapper, so every run is still validated, kept from overlapping, checked against pauses of
// its task, and recorded in scheduler.job_runs. Our own runner (`npm start`) adds crontab
// validation, hot reload, per-entry defaults, the crontab options ?tz=, ?overlap= and ?jitter=
// (graphile-worker's parser refuses a line with one: keep them out of the file this reads),
// runs recorded under the crontab entry's identifier, node heartbeats and rescue, bootstrap
// jobs, and the service reconciler (docs/embedding.md).
import { WorkerPreset } from "graphile-worker";

const preset: GraphileConfig.Preset = {
  extends: [WorkerPreset],
  worker: {
    connectionString: process.env.DATABASE_URL,
    taskDirectory: `${import.meta.dirname}/tasks`,
    crontabFile: `${import.meta.dirname}/crontab`,
    concurrentJobs: Number(process.env.SCHEDULER_CONCURRENCY ?? 4),
    fileExtensions: [".ts", ".js"],
    // With graphile-worker 0.18's defaults (-1: no batching), a job that finishes while the
    // worker pool shuts down is left locked until graphile-worker's 4-hour stale-lock sweep.
    // With 0, outcomes go through graphile-worker's batcher, which is flushed as the pool
    // stops, so the job is completed (or failed) and unlocked. src/engine/runner/start.ts does the same.
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
  },
};

export default preset;
