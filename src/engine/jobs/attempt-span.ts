import { SpanKind, type Attributes } from "@opentelemetry/api";
import type { JobHelpers } from "graphile-worker";
import { SchedulerError } from "../errors.ts";
import { ATTR, creationLink, MESSAGING_SYSTEM, recordFailure, tracer, withSpan } from "../tracing.ts";
import type { SplitPayload } from "./payload.ts";

// One CONSUMER "process" span per attempt, around everything a wrapper does with it (execute.ts,
// plain.ts). It links to the run's creation context (`_trace`) rather than continuing its trace:
// the conventions' default ("Consumer spans"), and a run may start hours after it was queued, or
// be retried. A cron tick has no creation context: its span is the root of a trace of its own,
// with no link. Always a root, never a child of whatever context the worker loop happens to carry.

export type AttemptOutcome = "success" | "failed" | "skipped" | "deferred";

export interface AttemptSpan {
  /** What the attempt learns as it goes: whether it is a dry run, its history row. */
  annotate(values: { dryRun?: boolean; runId?: string | null }): void;
  /** The attempt ended without running the job: it is paused, or the tick overlapped a run. */
  skipped(reason: "paused" | "overlap"): void;
}

/** Runs one attempt of `task` inside its span; `work` runs with the span active. */
export async function traceAttempt<T>(
  task: string,
  jobName: string,
  split: SplitPayload,
  helpers: JobHelpers,
  nodeId: string,
  work: (span: AttemptSpan) => Promise<T>,
): Promise<T> {
  const link = creationLink(split.trace);
  const attributes: Attributes = {
    [ATTR.system]: MESSAGING_SYSTEM,
    [ATTR.operationName]: "process",
    [ATTR.operationType]: "process",
    // graphile-worker hands a job to the task of its identifier: that is where it was sent.
    [ATTR.destination]: task,
    [ATTR.messageId]: String(helpers.job.id),
    [ATTR.clientId]: nodeId,
    [ATTR.job]: jobName,
    [ATTR.task]: task,
    [ATTR.attempt]: helpers.job.attempts,
    [ATTR.node]: nodeId,
    [ATTR.dryRun]: false,
  };
  if (split.scheduledFor) attributes[ATTR.scheduledFor] = split.scheduledFor.toISOString();
  const span = tracer.startSpan(`process ${task}`, { kind: SpanKind.CONSUMER, root: true, attributes, links: link ? [link] : [] });
  let outcome: AttemptOutcome = "success";
  const handle: AttemptSpan = {
    annotate({ dryRun, runId }) {
      if (dryRun !== undefined) span.setAttribute(ATTR.dryRun, dryRun);
      if (runId) span.setAttribute(ATTR.runId, runId);
    },
    skipped(reason) {
      outcome = "skipped";
      span.setAttribute(ATTR.skipReason, reason);
    },
  };
  try {
    return await withSpan(span, () => work(handle));
  } catch (error) {
    // A run that found its task's lock taken goes back to the queue (execute.ts, RunDeferred):
    // not an error, and it will have a span of its own when it runs.
    if (error instanceof SchedulerError && error.code === "run_deferred") {
      outcome = "deferred";
    } else {
      outcome = "failed";
      recordFailure(span, error);
    }
    throw error;
  } finally {
    span.setAttribute(ATTR.outcome, outcome);
    span.end();
  }
}
