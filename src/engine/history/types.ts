// What the run history records of a job: shared by the jobs that produce it and the history
// that stores it, here so the history depends on no job.

export type JobStatus = "running" | "success" | "failed" | "abandoned";

/** What every job returns (the original's `JobResult`); `details` lands in the history row. */
export interface JobResult {
  itemsProcessed: number;
  itemsFailed: number;
  message: string;
  details?: Record<string, unknown>;
}
