// What proves that a process is one this reconciler started for a service: the identity
// recorded at spawn (pid, start time in clock ticks, boot id: a pid alone is reused) and the
// markers spawn put into its environment (the service's name and a fresh instance id per
// start, read back from /proc/<pid>/environ). A row can copy any process's pid, start time
// and boot id; it cannot put markers into that process's environment.
import { MARKER_INSTANCE, MARKER_SERVICE, type ServiceMarker } from "./proc.ts";

export function markersMatch(marker: ServiceMarker | null, service: string, instanceId: string | null): boolean {
  return instanceId !== null && marker !== null && marker.service === service && marker.instance === instanceId;
}

/** Why a process with the recorded identity is not provably the service's, for last_error. */
export function notOursReason(process: { pid: number; comm: string }, service: string, instanceId: string | null, marker: ServiceMarker | null): string {
  const found =
    marker === null ? "its environment cannot be read"
    : marker.instance === null ? `it has no ${MARKER_INSTANCE}`
    : `it has ${MARKER_SERVICE}=${marker.service ?? ""} ${MARKER_INSTANCE}=${marker.instance}`;
  return `pid ${process.pid} (${process.comm}) has the pid, start time and boot the row records, but does not carry this service's instance marker (${MARKER_SERVICE}=${service} ${MARKER_INSTANCE}=${instanceId ?? "(none recorded)"}; ${found}): this reconciler did not start it, so nothing was signalled`;
}
