// The only place that sends signals. Every signal goes through guards: never pid <= 1 or an
// implausible pid (a huge value once became kill(-1): a broadcast), never this process or
// its parent or its group, never a process listening on a protected port, and only
// processes re-verified as ours from a fresh process-table read just before each signal.
import { SchedulerError } from "../../engine/errors.ts";
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
 * `leader`: the recorded process, verified by start time, leading its own group (we spawn
 * detached, so it does): the whole group is ours and is signalled at once.
 * `members`: processes signalled one by one, each verified by the instance marker in its
 * environment (e.g. children left behind after the leader died).
 */
export interface Targets {
  leader: ProcessInfo | null;
  members: ProcessInfo[];
}

export interface TargetSpec {
  identity: ProcessIdentity | null;
  /** SYSTEMPROMPT_SERVICE_INSTANCE of the processes we may signal one by one. */
  instanceId: string | null;
  /** Extra group ids to search for marked members (the group of an orphaned listener). */
  groups?: number[];
}

export function findTargets(spec: TargetSpec, table: ProcessTable): Targets {
  let leader: ProcessInfo | null = null;
  const members: ProcessInfo[] = [];
  const groups = new Set(spec.groups ?? []);
  if (spec.identity) {
    const info = table.byPid.get(spec.identity.pid);
    if (isSameProcess(info, spec.identity, table.bootId)) leader = info;
    groups.add(spec.identity.pid);
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
        if (readMarker(member.pid)?.instance === spec.instanceId) members.push(member);
      }
    }
  }
  return { leader, members };
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

function signalTargets(targets: Targets, signal: NodeJS.Signals): void {
  if (targets.leader) sendSignal(targets.leader.pid, signal, { group: true });
  for (const member of targets.members) sendSignal(member.pid, signal);
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
    const alive = { leader: isAlive(targets.leader) ? targets.leader : null, members: targets.members.filter((member) => isAlive(member)) };
    if (isEmpty(alive) || Date.now() >= deadline) return alive;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/** Stops a service's processes: SIGTERM to what is provably ours, a grace period, then SIGKILL. */
export async function terminate(spec: TargetSpec, options: TerminateOptions): Promise<TerminateResult> {
  const pollMs = options.pollMs ?? 50;
  let table = readProcessTable();
  let targets = findTargets(spec, table);
  if (isEmpty(targets)) return { signalled: false, killed: false, survivors: [] };
  refuseProtected(targets, table, options.protectedPorts);
  const force = options.force === true || options.graceMs <= 0;
  signalTargets(targets, force ? "SIGKILL" : "SIGTERM");
  let left = await waitGone(spec, Date.now() + (force ? options.killWaitMs ?? 5000 : options.graceMs), pollMs);
  if (isEmpty(left)) return { signalled: true, killed: force, survivors: [] };
  if (!force) {
    // re-verified from a fresh read: a pid that died and was reused during the grace period is not in `left`
    table = readProcessTable();
    targets = findTargets(spec, table);
    refuseProtected(targets, table, options.protectedPorts);
    signalTargets(targets, "SIGKILL");
    left = await waitGone(spec, Date.now() + (options.killWaitMs ?? 5000), pollMs);
  }
  return { signalled: true, killed: true, survivors: [...(left.leader ? [left.leader.pid] : []), ...left.members.map((member) => member.pid)] };
}
