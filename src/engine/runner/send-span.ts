import { context, SpanKind } from "@opentelemetry/api";
import { ATTR, creationContext, MESSAGING_SYSTEM, recordFailure, tracer, withSpan, type TraceCarrier } from "../tracing.ts";

// Queueing a run is sending a message: one PRODUCER "send" span, a child of whatever span is
// active (the application's around runJob, an instrumented HTTP request of the dashboard), and
// its context is the run's creation context, stored in the payload as `_trace` (tracing.ts).
// Without an SDK the span is a no-op and nothing is stored.

/** Runs `send` (the add_job) inside a send span, handing it the creation context to store. */
export async function withSendSpan<T extends { jobId: string }>(
  run: { jobName: string; task: string },
  send: (creation: TraceCarrier | null) => Promise<T>,
): Promise<T> {
  const span = tracer.startSpan(`send ${run.task}`, {
    kind: SpanKind.PRODUCER,
    attributes: {
      [ATTR.system]: MESSAGING_SYSTEM,
      [ATTR.operationName]: "send",
      [ATTR.operationType]: "send",
      [ATTR.destination]: run.task,
      [ATTR.job]: run.jobName,
      [ATTR.task]: run.task,
    },
  });
  try {
    const sent = await withSpan(span, () => send(creationContext(context.active())));
    span.setAttribute(ATTR.messageId, String(sent.jobId));
    return sent;
  } catch (error) {
    recordFailure(span, error);
    throw error;
  } finally {
    span.end();
  }
}
