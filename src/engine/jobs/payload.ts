import type { z } from "zod";

// A job's payload as graphile-worker hands it over: the job's own fields plus the reserved
// keys that graphile-worker's cron (`_cron`) and our crontab loader add: `_schedule` (the
// entry), `_overlap` (its `?overlap=skip`), `_jitter_max_ms` (its `?jitter=`), `_jitter_ms`
// (the delay this tick was given, see src/engine/runner/jitter.ts), `_catchup` (its
// `?catchup=latest`, read by the cron loop) and `_trace` (the creation
// context of whoever queued the run, see src/engine/tracing.ts). No job sees `_trace`, not even
// a plain task function, and no history row stores it.

export interface SplitPayload {
  fields: unknown;
  /** The cron tick this run belongs to, if a crontab entry queued it. */
  scheduledFor: Date | null;
  /** The crontab entry's identifier, when an entry (or `run ENTRY`) queued it. */
  schedule: string | null;
  /** `skip` when the entry skips a tick that finds a run in progress (`?overlap=skip`). */
  overlap: "skip" | null;
  /** How long after its tick this run was held back by the entry's `?jitter=`. */
  jitterMs: number | null;
  /** `_trace` as stored: the creation context of whoever queued the run (checked when read). */
  trace: unknown;
  /** The payload as queued, less `_trace`: what a plain task function is handed and its history row stores. */
  queued: unknown;
}

export function splitPayload(raw: unknown): SplitPayload {
  const none = { scheduledFor: null, schedule: null, overlap: null, jitterMs: null, trace: null, queued: raw };
  if (raw === null || raw === undefined) return { fields: {}, ...none };
  if (typeof raw !== "object" || Array.isArray(raw)) return { fields: raw, ...none };
  const { _trace, ...queued } = raw as Record<string, unknown>;
  const { _cron, _schedule, _overlap, _jitter_max_ms: _max, _jitter_ms, _catchup, ...fields } = queued as {
    _cron?: { ts?: string };
    _schedule?: unknown;
    _overlap?: unknown;
    _jitter_max_ms?: unknown;
    _jitter_ms?: unknown;
    _catchup?: unknown;
  } & Record<string, unknown>;
  const scheduledFor = _cron?.ts ? new Date(_cron.ts) : null;
  return {
    fields,
    trace: _trace ?? null,
    queued: _trace === undefined ? raw : queued,
    scheduledFor,
    schedule: typeof _schedule === "string" ? _schedule : null,
    overlap: _overlap === "skip" ? "skip" : null,
    // A tick of a jittered entry whose delay came out 0 was not held back: 0, not "no jitter".
    jitterMs: typeof _jitter_ms === "number" ? _jitter_ms : typeof _max === "number" && scheduledFor !== null ? 0 : null,
  };
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
