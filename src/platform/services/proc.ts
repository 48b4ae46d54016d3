// Reads the Linux process table from /proc. A pid alone proves nothing (the kernel reuses
// them); a pid plus its start time (clock ticks since boot, /proc/<pid>/stat field 22) plus
// the boot id names one process for ever. Reads are synchronous: a /proc file is a few
// hundred bytes served from memory, and one pass reads the whole table once.
// Not ps-list: it runs `ps` in a child process (about 14x slower than this read on our test
// host) and gives neither the start time in ticks, the state (zombies) nor the process group,
// so /proc would still have to be read for the identity check and for stopping a group.
import fs from "node:fs";
import { SchedulerError } from "../../engine/errors.ts";

export interface ProcessInfo {
  pid: number;
  comm: string;
  /** R, S, D, Z (zombie), X (dead), T, ... */
  state: string;
  ppid: number;
  pgrp: number;
  /** Start time in clock ticks since boot, as a decimal string (it can exceed 2^53 in theory). */
  startTicks: string;
}

export interface ProcessTable {
  bootId: string;
  byPid: Map<number, ProcessInfo>;
}

/** The identity we record when we start a process, and check before we ever signal it. */
export interface ProcessIdentity {
  pid: number;
  startTicks: string;
  bootId: string;
}

/** The highest pid Linux can ever hand out on 64-bit (PID_MAX_LIMIT); anything above is corrupt. */
export const PID_LIMIT = 4_194_304;

let cachedBootId: string | undefined;

export function bootId(): string {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    } catch (error) {
      throw new SchedulerError("no_proc", "service orchestration needs Linux /proc (cannot read /proc/sys/kernel/random/boot_id)", {
        hint: "run the service reconciler on Linux, or leave the services table empty on this host",
        cause: error,
      });
    }
  }
  return cachedBootId;
}

/** Parses /proc/<pid>/stat. The command name may hold spaces and parentheses, so split after the last ')'. */
export function parseStat(text: string): ProcessInfo | null {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return null;
  const pid = Number(text.slice(0, open).trim());
  const fields = text.slice(close + 2).split(" ");
  // fields[0] is stat field 3 (state), so stat field N is fields[N - 3]
  const startTicks = fields[19];
  if (!Number.isInteger(pid) || fields.length < 20 || !startTicks || !/^\d+$/.test(startTicks)) return null;
  return {
    pid,
    comm: text.slice(open + 1, close),
    state: fields[0] ?? "?",
    ppid: Number(fields[1]),
    pgrp: Number(fields[2]),
    startTicks,
  };
}

export function readProcess(pid: number): ProcessInfo | null {
  if (!isPlausiblePid(pid)) return null;
  try {
    return parseStat(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return null; // gone, or never existed
  }
}

/** One read of the whole process table. */
export function readProcessTable(): ProcessTable {
  const byPid = new Map<number, ProcessInfo>();
  const boot = bootId();
  for (const entry of fs.readdirSync("/proc")) {
    const code = entry.charCodeAt(0);
    if (code < 48 || code > 57) continue; // not a pid directory
    const info = readProcess(Number(entry));
    if (info) byPid.set(info.pid, info);
  }
  return { bootId: boot, byPid };
}

export function isPlausiblePid(pid: unknown): pid is number {
  return typeof pid === "number" && Number.isSafeInteger(pid) && pid > 0 && pid <= PID_LIMIT;
}

export function isAlive(info: ProcessInfo | null | undefined): info is ProcessInfo {
  return info !== null && info !== undefined && info.state !== "Z" && info.state !== "X";
}

/** True only for the very process we recorded: same pid, same start time, same boot, not a zombie. */
export function isSameProcess(info: ProcessInfo | null | undefined, identity: ProcessIdentity, currentBootId: string): info is ProcessInfo {
  return isAlive(info) && info.pid === identity.pid && info.startTicks === identity.startTicks && identity.bootId === currentBootId;
}

export interface ServiceMarker {
  service: string | null;
  instance: string | null;
}

export const MARKER_SERVICE = "SYSTEMPROMPT_SERVICE";
export const MARKER_INSTANCE = "SYSTEMPROMPT_SERVICE_INSTANCE";

/**
 * The markers we put in the environment of every process we start. Null when the
 * environment cannot be read (gone, or another user's process we may not inspect).
 */
export function readMarker(pid: number): ServiceMarker | null {
  if (!isPlausiblePid(pid)) return null;
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/environ`, "utf8");
  } catch {
    return null;
  }
  const marker: ServiceMarker = { service: null, instance: null };
  for (const entry of text.split("\0")) {
    if (entry.startsWith(`${MARKER_SERVICE}=`)) marker.service = entry.slice(MARKER_SERVICE.length + 1);
    else if (entry.startsWith(`${MARKER_INSTANCE}=`)) marker.instance = entry.slice(MARKER_INSTANCE.length + 1);
  }
  return marker;
}

/** The command line of a process, for messages a person reads. */
export function describeProcess(pid: number): string {
  try {
    const text = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
    const shown = text || readProcess(pid)?.comm || "?";
    return `pid ${pid} (${shown.length > 120 ? `${shown.slice(0, 117)}...` : shown})`;
  } catch {
    return `pid ${pid}`;
  }
}

/** Socket inodes listening on each TCP port, from /proc/net/tcp and tcp6 (this network namespace). */
export function listeningSockets(): Map<number, Set<string>> {
  const byPort = new Map<number, Set<string>>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      continue; // no IPv6, for instance
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== "0A") continue; // 0A = LISTEN
      const port = parseInt(fields[1]!.split(":")[1] ?? "", 16);
      const inode = fields[9]!;
      if (!Number.isInteger(port) || inode === "0") continue;
      let set = byPort.get(port);
      if (!set) byPort.set(port, (set = new Set()));
      set.add(inode);
    }
  }
  return byPort;
}

/** Inodes of the sockets a process holds open. */
export function socketInodesOf(pid: number): string[] {
  const inodes: string[] = [];
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (link.startsWith("socket:[")) inodes.push(link.slice(8, -1));
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/**
 * The pids holding a listening socket on `port`. Scans every process's file descriptors,
 * so it is for the rare conflict path, never for the per-pass observation.
 */
export function listenersOnPort(port: number, table: ProcessTable = readProcessTable()): number[] {
  const inodes = listeningSockets().get(port);
  if (!inodes || inodes.size === 0) return [];
  const pids: number[] = [];
  for (const pid of table.byPid.keys()) {
    if (socketInodesOf(pid).some((inode) => inodes.has(inode))) pids.push(pid);
  }
  return pids;
}

/** Living members of a process group, from a table read. */
export function groupMembers(table: ProcessTable, pgid: number): ProcessInfo[] {
  const members: ProcessInfo[] = [];
  for (const info of table.byPid.values()) if (info.pgrp === pgid && isAlive(info)) members.push(info);
  return members;
}
