// The only place that sends signals. Every signal goes through guards: never pid <= 1 or an
// implausible pid (a huge value once became kill(-1): a broadcast), never this process or
// its parent or its group, never a process listening on a protected port, and only
// processes proven ours (ownership.ts: recorded identity and the instance marker in their
// environment), proven again from /proc immediately before each kill(2).
//
// Node offers no pidfd (pidfd_open, pidfd_send_signal) without a native addon: process.kill
// takes a pid. So a small window remains between the last /proc read and kill(2), in which
// the process would have to exit and the kernel hand its pid to a new one (docs/security.md).
// For a child of this node there is none: an exited child stays a zombie, keeping its pid,
// until libuv reaps it on the event loop, and the re-check and the kill run in one turn of it.
import { SchedulerError } from "../../engine/errors.ts";
import { markersMatch, notOursReason } from "./ownership.ts";
import {
  isAlive, isPlausiblePid, isSameProcess, groupMembers, listeningSockets, readMarker, readProcess, readProcessTable, socketInodesOf,
  type ProcessIdentity, type ProcessInfo, type ProcessTable,
} from "./proc.ts";

export class RefusedSignal extends SchedulerError {
  constructor(message: string) {
    super("signal_refused", message, { hint: "the reconciler only signals processes it can prove it started" });
    this.name = "RefusedSignal";
  }
}

/** The recorded process is alive, but its environment does not prove it the service's: the row is marked orphaned. */
export class NotOurProcess extends RefusedSignal {
  constructor(message: string) {
    super(message);
    this.name = "NotOurProcess";
  }
}

const ownGroup = readProcess(process.pid)?.pgrp ?? process.pid;

/** Throws unless `pid` may be signalled at all (independent of whose process it is). */
export function checkSignalTarget(pid: number, group: boolean): void {
  if (!isPlausiblePid(pid) || pid <= 1) throw new RefusedSignal(`refusing to signal pid ${pid}: not a process id above 1`);
  if (pid === process.pid || pid === process.ppid) throw new RefusedSignal(`refusing to signal pid ${pid}: it is the scheduler itself or its parent`);
  if (group && pid === ownGroup) throw new RefusedSignal(`refusing to signal process group ${pid}: it is the scheduler's own group`);
}

/** Sends a signal to a process (or its group); false when it is already gone. */
export function sendSignal(pid: number, signal: NodeJS.Signals | 0, options: { group?: boolean } = {}): boolean {
  const group = options.group === true;
  checkSignalTarget(pid, group);
  try {
    process.kill(group ? -pid : pid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw new RefusedSignal(`cannot signal ${group ? "process group" : "pid"} ${pid}: ${(error as Error).message}`);
  }
}

/**
 * What to signal for one service, re-computed from a fresh table before every signal.
 * `leader`: the recorded process, verified by start time and markers, leading its own group
 * (we spawn detached, so it does): the whole group is ours and is signalled at once.
 * `members`: processes signalled one by one, each verified by the markers in its
 * environment (e.g. children left behind after the leader died).
 * `impostor`: a process with the recorded identity but without the markers: never signalled.
 */
export interface Targets {
  leader: ProcessInfo | null;
  members: ProcessInfo[];
  impostor: ProcessInfo | null;
}

export interface TargetSpec {
  identity: ProcessIdentity | null;
  /** The markers a process must carry to be signalled: SYSTEMPROMPT_SERVICE and SYSTEMPROMPT_SERVICE_INSTANCE. */
  service: string;
  instanceId: string | null;
  /** Extra group ids to search for marked members (the group of an orphaned listener). */
  groups?: number[];
}

const carriesMarkers = (pid: number, spec: TargetSpec) => markersMatch(readMarker(pid), spec.service, spec.instanceId);

export function findTargets(spec: TargetSpec, table: ProcessTable): Targets {
  let leader: ProcessInfo | null = null;
  let impostor: ProcessInfo | null = null;
  const members: ProcessInfo[] = [];
  const groups = new Set(spec.groups ?? []);
  if (spec.identity) {
    const info = table.byPid.get(spec.identity.pid);
    if (isSameProcess(info, spec.identity, table.bootId)) {
      if (carriesMarkers(info.pid, spec)) {
        leader = info;
        groups.add(info.pid);
      } else {
        impostor = info;
      }
    } else {
      groups.add(spec.identity.pid); // the leader is gone: what is left of its group, if marked
    }
  }
  if (leader && leader.pgrp !== leader.pid) {
    members.push(leader); // not a group leader (never the case for what we spawn): signal it alone
    leader = null;
  }
  if (leader) groups.delete(leader.pid); // the group signal reaches all of them
  if (spec.instanceId) {
    for (const pgid of groups) {
      if (!isPlausiblePid(pgid) || pgid <= 1) continue;
      for (const member of groupMembers(table, pgid)) {
        if (members.some((known) => known.pid === member.pid)) continue;
        if (carriesMarkers(member.pid, spec)) members.push(member);
      }
    }
  }
  return { leader, members, impostor };
}

/** Throws if any process about to be signalled listens on a protected port. */
function refuseProtected(targets: Targets, table: ProcessTable, protectedPorts: ReadonlySet<number>): void {
  if (protectedPorts.size === 0) return;
  const guarded = new Map<string, number>();
  for (const [port, inodes] of listeningSockets()) if (protectedPorts.has(port)) for (const inode of inodes) guarded.set(inode, port);
  if (guarded.size === 0) return;
  const pids = [...(targets.leader ? groupMembers(table, targets.leader.pid) : []), ...targets.members].map((info) => info.pid);
  for (const pid of pids) {
    for (const inode of socketInodesOf(pid)) {
      const port = guarded.get(inode);
      if (port !== undefined) throw new RefusedSignal(`refusing to signal pid ${pid}: it listens on protected port ${port}`);
    }
  }
}

/**
 * The process as /proc shows it now, if it is still the one found and still carries the
 * markers: the environment first, then the start time, so the environment read was of
 * this very process. Called immediately before each kill(2).
 */
function provenNow(target: ProcessInfo, spec: TargetSpec): ProcessInfo | null {
  if (!carriesMarkers(target.pid, spec)) return null;
  const now = readProcess(target.pid);
  return isAlive(now) && now.startTicks === target.startTicks ? now : null;
}

/** Signals what is still provably ours; a target gone or changed meanwhile is skipped. */
function signalTargets(targets: Targets, signal: NodeJS.Signals, spec: TargetSpec): void {
  if (targets.leader) {
    const leader = provenNow(targets.leader, spec);
    if (leader) sendSignal(leader.pid, signal, { group: leader.pgrp === leader.pid });
  }
  for (const member of targets.members) if (provenNow(member, spec)) sendSignal(member.pid, signal);
}

const isEmpty = (targets: Targets) => targets.leader === null && targets.members.length === 0;

export interface TerminateOptions {
  /** SIGTERM, then this long before SIGKILL; 0 or `force` sends SIGKILL at once. */
  graceMs: number;
  force?: boolean;
  protectedPorts: ReadonlySet<number>;
  /** How long to wait for SIGKILL to take effect. */
  killWaitMs?: number;
  pollMs?: number;
}

export interface TerminateResult {
  /** Something of ours was found and signalled. */
  signalled: boolean;
  /** SIGKILL was needed (or asked for). */
  killed: boolean;
  /** pids still alive after SIGKILL (uninterruptible sleep, say). */
  survivors: number[];
}

async function waitGone(spec: TargetSpec, deadline: number, pollMs: number): Promise<Targets> {
  for (;;) {
    const targets = findTargets(spec, readProcessTable());
    const alive = { leader: isAlive(targets.leader) ? targets.leader : null, members: targets.members.filter((member) => isAlive(member)), impostor: null };
    if (isEmpty(alive) || Date.now() >= deadline) return alive;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/**
 * Stops a service's processes: SIGTERM to what is provably ours, a grace period, then SIGKILL.
 * NotOurProcess, and nothing signalled, when the recorded process lacks the service's markers.
 */
export async function terminate(spec: TargetSpec, options: TerminateOptions): Promise<TerminateResult> {
  const pollMs = options.pollMs ?? 50;
  let table = readProcessTable();
  let targets = findTargets(spec, table);
  if (targets.impostor) throw new NotOurProcess(notOursReason(targets.impostor, spec.service, spec.instanceId, readMarker(targets.impostor.pid)));
  if (isEmpty(targets)) return { signalled: false, killed: false, survivors: [] };
  refuseProtected(targets, table, options.protectedPorts);
  const force = options.force === true || options.graceMs <= 0;
  signalTargets(targets, force ? "SIGKILL" : "SIGTERM", spec);
  let left = await waitGone(spec, Date.now() + (force ? options.killWaitMs ?? 5000 : options.graceMs), pollMs);
  if (isEmpty(left)) return { signalled: true, killed: force, survivors: [] };
  if (!force) {
    // re-verified from a fresh read: a pid that died and was reused during the grace period is not in `left`
    table = readProcessTable();
    targets = findTargets(spec, table);
    refuseProtected(targets, table, options.protectedPorts);
    signalTargets(targets, "SIGKILL", spec);
    left = await waitGone(spec, Date.now() + (options.killWaitMs ?? 5000), pollMs);
  }
  return { signalled: true, killed: true, survivors: [...(left.leader ? [left.leader.pid] : []), ...left.members.map((member) => member.pid)] };
}
