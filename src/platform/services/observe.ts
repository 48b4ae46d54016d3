// Observe: what is a service's process doing, from one process-table read, one port probe
// and, for a process with the recorded identity, its environment markers. Pure given its
// inputs (the markers come through `markerOf`), so every branch is testable without processes.
import { markersMatch, notOursReason } from "./ownership.ts";
import { isPlausiblePid, isSameProcess, type ProcessIdentity, type ProcessInfo, type ProcessTable, type ServiceMarker } from "./proc.ts";
import type { RuntimeStatus, ServiceRow } from "./types.ts";

export interface Observation {
  runtime: RuntimeStatus;
  /** The recorded process, alive and provably the one we started (identity and markers); null otherwise. */
  ours: ProcessInfo | null;
  /** Set when a process has the recorded identity but not the service's markers: why it is not ours. Nothing may signal it. */
  notOurs: string | null;
  /** The row said the process was up, and it is gone or its pid now belongs to someone else. */
  processLost: boolean;
  portOpen: boolean;
  /** Why, in words, for logs and last_error. */
  detail: string;
}

/** The identity recorded in a row, or null when the row does not hold a complete, sane one. */
export function recordedIdentity(row: Pick<ServiceRow, "pid" | "process_start_ticks" | "boot_id">): ProcessIdentity | null {
  if (!isPlausiblePid(row.pid) || row.pid <= 1 || !row.process_start_ticks || !row.boot_id) return null;
  return { pid: row.pid, startTicks: String(row.process_start_ticks), bootId: row.boot_id };
}

const UP = new Set(["running", "starting"]);

export function observe(row: ServiceRow, table: ProcessTable, portOpen: boolean, markerOf: (pid: number) => ServiceMarker | null): Observation {
  const identity = recordedIdentity(row);
  const info = identity ? table.byPid.get(identity.pid) : undefined;
  const same = identity && isSameProcess(info, identity, table.bootId) ? info : null;
  const marker = same ? markerOf(same.pid) : null;
  if (same && !markersMatch(marker, row.name, row.instance_id)) {
    // the row says this process is the service's; only its environment could prove it, and does not
    const notOurs = notOursReason(same, row.name, row.instance_id, marker);
    return { runtime: "orphaned", ours: null, notOurs, processLost: false, portOpen, detail: notOurs };
  }
  const ours = same;
  const processLost = !ours && row.pid !== null && UP.has(row.status);
  const seen = { ours, notOurs: null, processLost, portOpen };

  if (ours) {
    return portOpen
      ? { runtime: "running", ...seen, detail: `pid ${ours.pid} is up and port ${row.port} answers` }
      : { runtime: "starting", ...seen, detail: `pid ${ours.pid} is up; port ${row.port} does not answer yet` };
  }
  const lost = describeLoss(row, identity, info, table.bootId);
  if (portOpen) {
    return { runtime: "orphaned", ...seen, detail: `port ${row.port} answers but not from a process we started${lost ? ` (${lost})` : ""}` };
  }
  if (row.pid !== null && (processLost || row.status === "crashed")) {
    return { runtime: "crashed", ...seen, detail: lost ?? `pid ${row.pid} is gone` };
  }
  return { runtime: "stopped", ...seen, detail: "no process" };
}

function describeLoss(row: ServiceRow, identity: ProcessIdentity | null, info: ProcessInfo | undefined, bootId: string): string | null {
  if (row.pid === null) return null;
  if (!identity) return `recorded pid ${row.pid} cannot be verified (missing start time, or not a valid pid)`;
  if (identity.bootId !== bootId) return `pid ${row.pid} was started before the host rebooted`;
  if (!info || info.state === "Z" || info.state === "X") return `pid ${row.pid} is gone`;
  return `pid ${row.pid} now belongs to another process (${info.comm}, different start time)`;
}
