// Observe: what is a service's process doing, from one process-table read and one port probe.
// Pure given its inputs, so every branch is testable without processes.
import { isPlausiblePid, isSameProcess, type ProcessIdentity, type ProcessInfo, type ProcessTable } from "./proc.ts";
import type { RuntimeStatus, ServiceRow } from "./types.ts";

export interface Observation {
  runtime: RuntimeStatus;
  /** The recorded process, alive and provably the one we started; null otherwise. */
  ours: ProcessInfo | null;
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

export function observe(row: ServiceRow, table: ProcessTable, portOpen: boolean): Observation {
  const identity = recordedIdentity(row);
  const info = identity ? table.byPid.get(identity.pid) : undefined;
  const ours = identity && isSameProcess(info, identity, table.bootId) ? info : null;
  const processLost = !ours && row.pid !== null && UP.has(row.status);

  if (ours) {
    return portOpen
      ? { runtime: "running", ours, processLost, portOpen, detail: `pid ${ours.pid} is up and port ${row.port} answers` }
      : { runtime: "starting", ours, processLost, portOpen, detail: `pid ${ours.pid} is up; port ${row.port} does not answer yet` };
  }
  const lost = describeLoss(row, identity, info, table.bootId);
  if (portOpen) {
    return { runtime: "orphaned", ours, processLost, portOpen, detail: `port ${row.port} answers but not from a process we started${lost ? ` (${lost})` : ""}` };
  }
  if (row.pid !== null && (processLost || row.status === "crashed")) {
    return { runtime: "crashed", ours, processLost, portOpen, detail: lost ?? `pid ${row.pid} is gone` };
  }
  return { runtime: "stopped", ours, processLost, portOpen, detail: "no process" };
}

function describeLoss(row: ServiceRow, identity: ProcessIdentity | null, info: ProcessInfo | undefined, bootId: string): string | null {
  if (row.pid === null) return null;
  if (!identity) return `recorded pid ${row.pid} cannot be verified (missing start time, or not a valid pid)`;
  if (identity.bootId !== bootId) return `pid ${row.pid} was started before the host rebooted`;
  if (!info || info.state === "Z" || info.state === "X") return `pid ${row.pid} is gone`;
  return `pid ${row.pid} now belongs to another process (${info.comm}, different start time)`;
}
