// Lets the stock CLI run this project: `npx graphile-worker` in the project root runs the
// task files in tasks/ and the crontab, and every run is still recorded in
// scheduler.job_runs (the task files carry our job wrapper). Our own runner
// (`npm start`) adds crontab validation and hot reload, nodes and rescue, pause checks
// on cron-created jobs, and the service reconciler.
import { WorkerPreset } from "graphile-worker";

const preset: GraphileConfig.Preset = {
  extends: [WorkerPreset],
  worker: {
    connectionString: process.env.DATABASE_URL,
    taskDirectory: `${import.meta.dirname}/tasks`,
    crontabFile: `${import.meta.dirname}/crontab`,
    concurrentJobs: Number(process.env.SCHEDULER_CONCURRENCY ?? 4),
    fileExtensions: [".ts", ".js"],
    // See GRAPHILE-WORKER-NOTES: without these, a job finishing during shutdown stays locked for 4 hours.
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
  },
};

export default preset;
