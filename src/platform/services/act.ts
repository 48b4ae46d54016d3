// Act: carry out one decided action for one service and record the outcome in its row.
// Nothing here signals a process except through signals.ts, which re-verifies it first.
import crypto from "node:crypto";
import type { Pool } from "../../engine/db/pool.ts";
import { errorMessage } from "../../engine/errors.ts";
import type { Logger } from "../../engine/log.ts";
import { ServiceNotAllowed, type Allowlist } from "./allowlist.ts";
import type { ChildRegistry } from "./children.ts";
import { restartDelayMs } from "./decide.ts";
import { recordedIdentity } from "./observe.ts";
import { portAnswers, waitForPortFree } from "./ports.ts";
import { describeProcess, listenersOnPort, readMarker, readProcessTable } from "./proc.ts";
import { NotOurProcess, RefusedSignal, terminate, type TargetSpec } from "./signals.ts";
import { spawnService } from "./spawn.ts";
import { claimStart, deleteStale, recordError, recordFailure, recordSpawn, recordStopped } from "./store.ts";
import type { Policy, ServiceAction, ServiceRow } from "./types.ts";

export interface ActContext {
  pool: Pool;
  host: string;
  logger: Logger;
  policy: Policy;
  protectedPorts: ReadonlySet<number>;
  logDir: string;
  children: ChildRegistry | null;
  /** SCHEDULER_SERVICES_ALLOWED_COMMANDS of this host: the programs services may run (none if empty). */
  allowlist: Allowlist;
}

export type Outcome = { status: "done"; note?: string } | { status: "failed" | "refused"; error: string };

const done = (note?: string): Outcome => (note ? { status: "done", note } : { status: "done" });
const failed = (error: string): Outcome => ({ status: "failed", error });
const refused = (error: string): Outcome => ({ status: "refused", error });

function recordedTargets(row: ServiceRow): TargetSpec {
  return { identity: recordedIdentity(row), service: row.name, instanceId: row.instance_id };
}

/**
 * SIGTERM (or SIGKILL when forced) to what is provably ours; RefusedSignal becomes an outcome,
 * and a recorded process without the service's markers marks the row orphaned.
 */
async function terminateSafely(ctx: ActContext, row: ServiceRow, spec: TargetSpec, force: boolean): Promise<Outcome | null> {
  ctx.children?.stopping(spec.instanceId);
  try {
    const result = await terminate(spec, { graceMs: ctx.policy.stopGraceMs, force, protectedPorts: ctx.protectedPorts });
    if (result.survivors.length > 0) return failed(`pid(s) ${result.survivors.join(", ")} still alive after SIGKILL`);
    if (result.killed && !force) ctx.logger.warn({ service: row.name, graceMs: ctx.policy.stopGraceMs }, "service ignored SIGTERM; killed it");
    return null;
  } catch (error) {
    if (error instanceof NotOurProcess) return recordConflict(ctx, row, error.message);
    if (error instanceof RefusedSignal) return refused(error.message);
    throw error;
  }
}

/** Who holds the service's port: processes marked as this service's (ours), and the rest. */
function portHolders(row: ServiceRow): { ours: { pid: number; pgrp: number; instance: string | null }[]; foreign: number[] } {
  const table = readProcessTable();
  const ours: { pid: number; pgrp: number; instance: string | null }[] = [];
  const foreign: number[] = [];
  for (const pid of row.port === null ? [] : listenersOnPort(row.port, table)) {
    const marker = readMarker(pid);
    if (marker?.service === row.name && marker.instance) ours.push({ pid, pgrp: table.byPid.get(pid)?.pgrp ?? pid, instance: marker.instance });
    else foreign.push(pid);
  }
  return { ours, foreign };
}

async function recordConflict(ctx: ActContext, row: ServiceRow, message: string): Promise<Outcome> {
  await recordFailure(ctx.pool, row.name, ctx.host, {
    status: row.status === "failed" ? "failed" : "orphaned",
    failures: row.consecutive_failures,
    backoffUntil: new Date(Date.now() + ctx.policy.conflictRetryMs),
    error: message,
    forgetProcess: false,
  });
  return failed(message);
}

/** Frees the port of an orphaned service if the holder is provably one of ours; otherwise a conflict, nothing killed. */
async function freeOrphanedPort(ctx: ActContext, row: ServiceRow, force: boolean): Promise<Outcome | null> {
  const { ours, foreign } = portHolders(row);
  if (foreign.length > 0 || ours.length === 0) {
    const who = foreign.length > 0 ? foreign.map(describeProcess).join(", ") : "a process whose owner cannot be identified";
    return recordConflict(ctx, row, `port conflict: port ${row.port} is held by ${who}, which this scheduler did not start; nothing was killed. Free the port or give service ${row.name} another port`);
  }
  for (const holder of ours) {
    const outcome = await terminateSafely(ctx, row, { identity: null, service: row.name, instanceId: holder.instance, groups: [holder.pgrp] }, force);
    if (outcome) return outcome;
  }
  return null;
}

async function waitPortReleased(ctx: ActContext, row: ServiceRow): Promise<string | null> {
  if (row.port === null || (await waitForPortFree(row.port, ctx.policy.portReleaseMs))) return null;
  return `port ${row.port} still answers after the process stopped: another process holds it`;
}

export async function stopService(ctx: ActContext, row: ServiceRow, options: { force?: boolean } = {}): Promise<Outcome> {
  const outcome = await terminateSafely(ctx, row, recordedTargets(row), options.force === true);
  if (outcome) {
    if (outcome.status !== "done") await recordError(ctx.pool, row.name, ctx.host, `stop failed: ${outcome.error}`);
    return outcome;
  }
  const busy = await waitPortReleased(ctx, row);
  await recordStopped(ctx.pool, row.name, ctx.host, busy);
  return done(busy ?? undefined);
}

export async function startService(ctx: ActContext, row: ServiceRow, options: { restart?: boolean } = {}): Promise<Outcome> {
  if (row.port !== null && ctx.protectedPorts.has(row.port)) return refused(`port ${row.port} is protected; not starting ${row.name}`);
  const instanceId = crypto.randomUUID();
  const claimed = await claimStart(ctx.pool, row.name, ctx.host, instanceId, options.restart === true);
  if (!claimed) return refused(`service ${row.name} was disabled, marked failed or removed meanwhile; nothing started`);
  const startFailure = async (message: string, forgetProcess: boolean): Promise<Outcome> => {
    const failures = claimed.consecutive_failures + 1;
    await recordFailure(ctx.pool, row.name, ctx.host, {
      status: failures >= ctx.policy.maxRapidFailures ? "failed" : "crashed",
      failures,
      backoffUntil: new Date(Date.now() + restartDelayMs(failures, ctx.policy)),
      error: message,
      forgetProcess,
    });
    return failed(message);
  };
  if (!claimed.command || claimed.port === null) return startFailure(`cannot start: the row has no ${claimed.command ? "port" : "command"}`, true);
  if (ctx.protectedPorts.has(claimed.port)) return startFailure(`port ${claimed.port} is protected; not starting ${row.name}`, true);
  if (await portAnswers(claimed.port)) {
    return recordConflict(ctx, row, `port conflict: port ${claimed.port} was taken before ${row.name} started; nothing was started`);
  }
  let spawned;
  try {
    spawned = await spawnService({ ...claimed, command: claimed.command, port: claimed.port, instanceId }, ctx.logDir, ctx.allowlist);
  } catch (error) {
    if (error instanceof ServiceNotAllowed) {
      // not a crash: retrying cannot help until the row or the host's allowlist changes
      const message = errorMessage(error);
      await recordFailure(ctx.pool, row.name, ctx.host, { status: "failed", failures: claimed.consecutive_failures + 1, backoffUntil: null, error: message, forgetProcess: true });
      ctx.logger.warn({ service: row.name }, message);
      return failed(message);
    }
    return startFailure(errorMessage(error), true);
  }
  ctx.children?.track(row.name, instanceId, spawned.child);
  if (!spawned.identity) return startFailure(`exited at once (see ${spawned.logFile})`, true);
  if (!(await recordSpawn(ctx.pool, row.name, instanceId, spawned.identity))) {
    // the row changed while we spawned (removed, or started by someone else): this process is ours and unwanted
    await terminateSafely(ctx, row, { identity: spawned.identity, service: row.name, instanceId }, true);
    return refused(`service ${row.name} changed while starting; the new process was stopped again`);
  }
  ctx.logger.info({ service: row.name, pid: spawned.identity.pid, port: claimed.port, log: spawned.logFile }, "service process started");
  return done();
}

/** Stop (ours only), free the port if an orphan of ours holds it, then start. */
export async function restartService(ctx: ActContext, row: ServiceRow): Promise<Outcome> {
  const stopped = await terminateSafely(ctx, row, recordedTargets(row), false);
  if (stopped) return stopped;
  if (row.port !== null && (await portAnswers(row.port))) {
    const freed = await freeOrphanedPort(ctx, row, false);
    if (freed) return freed;
    const busy = await waitPortReleased(ctx, row);
    if (busy) return recordConflict(ctx, row, busy);
  }
  return startService(ctx, row, { restart: true });
}

/** Disabled, yet its port answers: stop the holder only if it carries this service's marker. */
export async function cleanupProcess(ctx: ActContext, row: ServiceRow): Promise<Outcome> {
  const stopped = await terminateSafely(ctx, row, recordedTargets(row), false);
  if (stopped) return stopped;
  const freed = await freeOrphanedPort(ctx, row, false);
  if (freed) return freed;
  const busy = await waitPortReleased(ctx, row);
  await recordStopped(ctx.pool, row.name, ctx.host, busy);
  return done(busy ?? undefined);
}

export async function cleanupDb(ctx: ActContext, row: ServiceRow): Promise<Outcome> {
  return (await deleteStale(ctx.pool, row.name, ctx.host, row.pid)) ? done() : refused(`service ${row.name} changed meanwhile; its row was kept`);
}

export async function act(ctx: ActContext, row: ServiceRow, action: ServiceAction): Promise<Outcome> {
  switch (action) {
    case "start":
      return startService(ctx, row);
    case "stop":
      return stopService(ctx, row);
    case "restart":
      return restartService(ctx, row);
    case "cleanup-process":
      return cleanupProcess(ctx, row);
    case "cleanup-db":
      return cleanupDb(ctx, row);
    case "none":
      return done();
  }
}
