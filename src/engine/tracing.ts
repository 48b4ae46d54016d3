import fs from "node:fs";
import path from "node:path";
import { context, propagation, ROOT_CONTEXT, SpanStatusCode, trace, type Context, type Link, type Span } from "@opentelemetry/api";
import { projectRoot } from "./db/sql-file.ts";
import { SchedulerError } from "./errors.ts";

// OpenTelemetry traces, through @opentelemetry/api alone: every call below is a no-op until the
// application registers an SDK (docs/observability.md#traces-opentelemetry). A run is a message
// in the messaging conventions' terms: whoever queues it opens a PRODUCER "send" span
// (runner/send-span.ts) whose context travels in the job's payload under `_trace`; each attempt
// is a CONSUMER "process" span (jobs/attempt-span.ts) linked to that context.
//
// Names follow the OpenTelemetry semantic conventions for messaging spans (semantic-conventions
// v1.44, docs/messaging/messaging-spans.md: "Span name", "Operation types", "Span kind",
// "Consumer spans", "Process span", "Send span (producer)") and docs/general/recording-errors.md
// (status ERROR, its description the exception's message, `error.type`). graphile-worker has no
// well-known `messaging.system` value; the conventions allow a custom one.

const version = (JSON.parse(fs.readFileSync(path.join(projectRoot, "package.json"), "utf8")) as { version: string }).version;

/** A proxy until an SDK registers its provider; it then delegates to it, whenever that happens. */
export const tracer = trace.getTracer("systemprompt-scheduler", version);

export const MESSAGING_SYSTEM = "graphile_worker";

export const ATTR = {
  system: "messaging.system",
  operationName: "messaging.operation.name",
  operationType: "messaging.operation.type",
  destination: "messaging.destination.name",
  messageId: "messaging.message.id",
  clientId: "messaging.client.id",
  errorType: "error.type",
  job: "systemprompt_scheduler.job",
  task: "systemprompt_scheduler.task",
  attempt: "systemprompt_scheduler.attempt",
  node: "systemprompt_scheduler.node",
  scheduledFor: "systemprompt_scheduler.scheduled_for",
  dryRun: "systemprompt_scheduler.dry_run",
  runId: "systemprompt_scheduler.run_id",
  outcome: "systemprompt_scheduler.outcome",
  skipReason: "systemprompt_scheduler.skip_reason",
} as const;

/** A run's creation context, as the reserved payload key `_trace` holds it: W3C Trace Context. */
export interface TraceCarrier {
  traceparent: string;
  tracestate?: string;
}

/**
 * The creation context of a message sent from `sending`, in W3C form, or null when there is none
 * to give (no SDK, or one without the W3C trace-context propagator). Baggage, if the propagator
 * writes it, is not kept: it is the application's data, not ours to store in job payloads.
 */
export function creationContext(sending: Context): TraceCarrier | null {
  const carrier: Record<string, string> = {};
  propagation.inject(sending, carrier);
  if (typeof carrier.traceparent !== "string") return null;
  return carrier.tracestate ? { traceparent: carrier.traceparent, tracestate: carrier.tracestate } : { traceparent: carrier.traceparent };
}

/** The link to a run's creation context (`_trace`, as a producer or a SQL caller stored it), if it holds a valid one. */
export function creationLink(stored: unknown): Link | null {
  if (stored === null || typeof stored !== "object") return null;
  const { traceparent, tracestate } = stored as Record<string, unknown>;
  if (typeof traceparent !== "string") return null;
  const carrier = typeof tracestate === "string" ? { traceparent, tracestate } : { traceparent };
  const spanContext = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, carrier));
  return spanContext && trace.isSpanContextValid(spanContext) ? { context: spanContext } : null;
}

/** Runs `work` with `span` as the active span (nested spans become its children). */
export function withSpan<T>(span: Span, work: () => T): T {
  return context.with(trace.setSpan(context.active(), span), work);
}

/** An operation that ended in `error`: status ERROR with its message, `error.type` (our error code, else the class), the exception. */
export function recordFailure(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setAttribute(ATTR.errorType, error instanceof SchedulerError ? error.code : error instanceof Error ? error.name : "_OTHER");
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
}
