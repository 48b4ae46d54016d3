// One reconcile pass for one host: read its rows (one query), the process table (one read)
// and its ports (probed in parallel); observe and plan each service; write what changed in
// one statement; then act. A per-host advisory lock keeps two nodes of one host from acting
// at once; other hosts' rows are never read or written.
import { performance } from "node:perf_hooks";
import type { Pool } from "../../engine/db/pool.ts";
import { errorMessage } from "../../engine/errors.ts";
import type { Logger } from "../../engine/log.ts";
import { act, type ActContext, type Outcome } from "./act.ts";
import { observe } from "./observe.ts";
import { planService, type Plan } from "./plan.ts";
import { probePorts } from "./ports.ts";
import { readMarker, readProcessTable } from "./proc.ts";
import { applyObservations, listHostServices, lockHost, tryLockHost, unlockHost } from "./store.ts";
import { emptyResult, type PassResult, type ServiceRow } from "./types.ts";

export interface ReconcileContext extends ActContext {
  /** How many actions run at once (stops wait out grace periods). */
  concurrency?: number;
  now?: () => Date;
}

/** Observe and decide for every service of the host, without acting (also `reconcile --dry-run`). */
export async function planHost(ctx: ReconcileContext, rows?: ServiceRow[]): Promise<Plan[]> {
  const services = rows ?? (await listHostServices(ctx.pool, ctx.host));
  const table = readProcessTable();
  const ports = await probePorts(services.flatMap((row) => (row.port === null ? [] : [row.port])));
  const planContext = { now: ctx.now?.() ?? new Date(), policy: ctx.policy, protectedPorts: ctx.protectedPorts };
  return services.map((row) => planService(row, observe(row, table, row.port !== null && ports.get(row.port) === true, readMarker), planContext));
}

/** When the loop should look again: soon while something is starting or a back-off ends. */
export function nextCheckInMs(plans: Plan[], intervalMs: number, now = Date.now()): number {
  let wait = intervalMs;
  for (const plan of plans) {
    if (plan.runtime === "starting" || plan.action === "start" || plan.action === "restart") wait = Math.min(wait, 250);
    const until = plan.update ? plan.update.backoff_until : plan.row.backoff_until;
    const status = plan.update?.status ?? plan.row.status;
    if (until && status !== "failed" && plan.row.desired_status === "enabled") wait = Math.min(wait, Math.max(50, until.getTime() - now + 10));
  }
  return wait;
}

async function runActions(ctx: ReconcileContext, plans: Plan[], result: PassResult): Promise<void> {
  const queue = plans.filter((plan) => plan.action !== "none");
  const worker = async () => {
    for (let plan = queue.shift(); plan; plan = queue.shift()) {
      // act on the row as the pass just recorded it
      const row: ServiceRow = plan.update ? { ...plan.row, ...plan.update } : plan.row;
      let outcome: Outcome;
      try {
        outcome = await act(ctx, row, plan.action);
      } catch (error) {
        outcome = { status: "failed", error: errorMessage(error) };
      }
      result.actions.push({ name: row.name, action: plan.action, runtime: plan.runtime, outcome: outcome.status });
      if (outcome.status !== "done") {
        result.failed.push({ name: row.name, action: plan.action, error: outcome.error });
        continue;
      }
      if (plan.action === "start") result.started += 1;
      else if (plan.action === "stop") result.stopped += 1;
      else if (plan.action === "restart") result.restarted += 1;
      else result.cleanedUp += 1;
      if (outcome.note) ctx.logger.warn({ service: row.name, action: plan.action }, outcome.note);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(ctx.concurrency ?? 8, queue.length)) }, worker));
}

export interface PassOutcome {
  result: PassResult;
  plans: Plan[];
}

/**
 * One pass. `stopAll` (the shutdown policy "stop") stops every service with a live process of
 * ours instead, leaving desired states as they are, so the next start brings them back.
 */
export async function reconcileHost(ctx: ReconcileContext, options: { stopAll?: boolean; lockWaitMs?: number } = {}): Promise<PassOutcome> {
  const startedAt = performance.now();
  const result = emptyResult(ctx.host);
  const client = await ctx.pool.connect();
  let plans: Plan[] = [];
  let broken: Error | undefined;
  try {
    const locked = options.lockWaitMs ? await lockHost(client, ctx.host, options.lockWaitMs) : await tryLockHost(client, ctx.host);
    if (!locked) {
      result.skipped = `another node of host ${ctx.host} is reconciling its services`;
      return { result, plans };
    }
    try {
      const rows = await listHostServices(client, ctx.host);
      result.services = rows.length;
      plans = await planHost(ctx, rows);
      if (options.stopAll) {
        plans = plans.map((plan) => ({ ...plan, update: null, action: plan.observation.ours ? "stop" : "none", reason: "scheduler shutdown" }));
      }
      await applyObservations(
        client,
        ctx.host,
        plans.flatMap((plan) => (plan.update ? [{ ...plan.update, version: plan.row.version }] : [])),
      );
      for (const plan of plans) {
        if (plan.update && plan.update.last_error !== plan.row.last_error && plan.update.last_error) {
          ctx.logger.warn({ service: plan.row.name, status: plan.update.status, failures: plan.update.consecutive_failures }, plan.update.last_error);
        }
      }
      await runActions(ctx, plans, result);
    } finally {
      // a connection that cannot unlock is dropped, which releases the lock with it
      await unlockHost(client, ctx.host).catch((error: Error) => (broken = error));
    }
  } finally {
    client.release(broken);
    result.durationMs = Math.round(performance.now() - startedAt);
  }
  return { result, plans };
}

/** The shutdown policy "stop": waits for the host lock, then stops what runs. */
export async function stopHostServices(ctx: ReconcileContext): Promise<PassResult> {
  return (await reconcileHost(ctx, { stopAll: true, lockWaitMs: 30_000 })).result;
}
