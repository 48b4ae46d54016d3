import type { z } from "zod";

// A job's payload as graphile-worker hands it over: the job's own fields plus the reserved
// keys that graphile-worker's cron (`_cron`) and our crontab loader (`_schedule`) add.

export interface SplitPayload {
  fields: unknown;
  /** The cron tick this run belongs to, if a crontab entry queued it. */
  scheduledFor: Date | null;
  /** The crontab entry's identifier, when an entry (or `run ENTRY`) queued it. */
  schedule: string | null;
}

export function splitPayload(raw: unknown): SplitPayload {
  if (raw === null || raw === undefined) return { fields: {}, scheduledFor: null, schedule: null };
  if (typeof raw !== "object" || Array.isArray(raw)) return { fields: raw, scheduledFor: null, schedule: null };
  const { _cron, _schedule, ...fields } = raw as { _cron?: { ts?: string }; _schedule?: unknown } & Record<string, unknown>;
  const scheduledFor = _cron?.ts ? new Date(_cron.ts) : null;
  return { fields, scheduledFor, schedule: typeof _schedule === "string" ? _schedule : null };
}

/** Formats zod issues as "field: problem" for a person. */
export function describePayloadErrors(jobName: string, error: z.ZodError): string {
  const problems = error.issues.map((issue) => {
    const field = issue.path.length > 0 ? issue.path.join(".") : "(payload)";
    if (issue.code === "unrecognized_keys") {
      const prefix = issue.path.length > 0 ? `${issue.path.join(".")}.` : "";
      return `unknown field(s) ${issue.keys.map((key) => `'${prefix}${key}'`).join(", ")}`;
    }
    return `field '${field}': ${issue.message}`;
  });
  return `invalid payload for job '${jobName}': ${problems.join("; ")}`;
}
