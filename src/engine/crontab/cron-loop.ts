import type { EventEmitter } from "node:events";
import type { CronJob, JobAndCronIdentifier, ParsedCronItem, TimestampDigest } from "graphile-worker";
import type pg from "pg";
import { backoffMs } from "../db/connection-errors.ts";
import { readSql } from "../db/sql-file.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";

// The node's cron: graphile-worker 0.18's cron loop (its src/cron.ts), run on the database's
// clock instead of this machine's. graphile-worker's loop reads Date.now() and takes no other
// time source, so a node whose clock is 100 s behind started every tick 100 s late (and the
// schedule was flagged LATE each time), and one ahead queued them early. The bookkeeping is
// graphile-worker's own, unchanged: a `_private_known_crontabs` row per entry, advanced to
// each tick by an upsert that exactly one node wins, and add_job with the entry's job key
// (queue_tick.sql); so these nodes, older ones and stock graphile-worker processes share the
// ticks, each once. Backfill (`?fill=`), zoned entries (their `match` decides by the instant)
// and jitter (delayCronJobs, on `cron:schedule` and `cron:backfill`, emitted here as
// graphile-worker emits them) behave as under graphile-worker's loop; so do missed ticks
// (sql/engine/021: its trigger watches those upserts).

const KNOWN_CRONTABS = readSql(import.meta.url, "known_crontabs.sql");
const KNOW_CRONTABS = readSql(import.meta.url, "know_crontabs.sql");
const QUEUE_TICK = readSql(import.meta.url, "queue_tick.sql");
const RECORD_CATCHUP_MISSED = readSql(import.meta.url, "record_catchup_missed.sql");
const RECORD_PASSED_TICKS = readSql(import.meta.url, "record_passed_ticks.sql");
/** Named like graphile-worker's bookkeeping statements, which the patient pool may re-send (graphile/internals.ts). */
const QUEUE_TICK_STATEMENT = "cron_tick/scheduler";

const MINUTE = 60_000;
/** graphile-worker's cron retries as long as it runs, at most a minute apart. */
const RETRY_CAP_MS = 60_000;
/**
 * How long after a tick a live node has surely queued it. A starting node records the ticks
 * before its start that nobody queued as missed: those older than this at once, the others
 * this long after its start (another node's loop may be queueing them right now).
 */
const QUEUED_WITHIN_MS = 10_000;

export interface CronLoop {
  /** Resolves once the loop's start has run (backfill, passed ticks recorded) or failed the first time. */
  ready: Promise<void>;
  /** Stops the loop; resolves once a tick being queued is written. */
  stop(): Promise<void>;
}

export interface CronLoopOptions {
  pool: pg.Pool;
  /** The live crontab: read on every tick, so an edit applies from the next minute (crontab/watch.ts). */
  items: ParsedCronItem[];
  /** A time the database's clock has surely reached (epoch ms): cluster/clock.ts, `reached`. */
  now(): number;
  /** graphile-worker's events: `cron:backfill`, `cron:schedule` and `cron:scheduled`, with the job objects written. */
  events: EventEmitter;
  logger: Logger;
  /** Who records the ticks a `?catchup=latest` backfill passes over (scheduler.job_runs.node_id). */
  nodeId?: string;
}

interface KnownCrontab {
  identifier: string;
  known_since: Date;
  last_execution: Date | null;
}

/** What graphile-worker's cron matches an item against: the tick's UTC fields. */
export function digestOf(tickMs: number): TimestampDigest {
  const at = new Date(tickMs);
  return { min: at.getUTCMinutes(), hour: at.getUTCHours(), date: at.getUTCDate(), month: at.getUTCMonth() + 1, dow: at.getUTCDay() };
}

/** The job of an item's tick, as graphile-worker's cron builds it (makeJobForItem). */
function jobFor(item: ParsedCronItem, tickMs: number, backfilled: boolean): CronJob {
  const ts = new Date(tickMs).toISOString();
  return {
    task: item.task,
    payload: { ...item.payload, _cron: { ts, backfilled } },
    queueName: item.options.queueName,
    runAt: ts,
    maxAttempts: item.options.maxAttempts,
    jobKey: item.options.jobKey,
    jobKeyMode: item.options.jobKeyMode,
    priority: item.options.priority,
  };
}

const ceilMinute = (ms: number) => Math.ceil(ms / MINUTE) * MINUTE;

/** Queues the jobs of tick `tickMs`, once across nodes; `due: false` when the database's clock has not reached it yet. */
export async function queueTick(pool: pg.Pool, jobs: JobAndCronIdentifier[], tickMs: number): Promise<{ due: boolean; queued: number; dueInMs: number }> {
  const { rows } = await pool.query<{ due: boolean; queued: number; due_in_ms: number }>({
    name: QUEUE_TICK_STATEMENT,
    text: QUEUE_TICK,
    values: [JSON.stringify(jobs), new Date(tickMs).toISOString()],
  });
  const row = rows[0]!;
  return { due: row.due, queued: row.queued, dueInMs: row.due_in_ms };
}

export function startCronLoop(options: CronLoopOptions): CronLoop {
  const { pool, items, now, events, logger } = options;
  const catchesUpLatest = (item: ParsedCronItem) => (item.payload as Record<string, unknown> | null)?._catchup === "latest";
  let timer: NodeJS.Timeout | null = null;
  let passedTimer: NodeJS.Timeout | null = null;
  let stopped = false;
  let failures = 0;
  let inFlight: Promise<void> = Promise.resolve();
  let passInFlight: Promise<void> = Promise.resolve();
  /** The next tick to queue (a whole minute). */
  let next = 0;

  const run = (step: () => Promise<void>) => {
    inFlight = step().catch((error: unknown) => {
      // As graphile-worker does: start again, backfill included, after a back-off.
      const delay = backoffMs(failures++, RETRY_CAP_MS);
      logger.error({ error: errorMessage(error), attempt: failures }, `the cron loop failed; it starts again (with its backfill) in ${delay} ms`);
      after(delay, begin);
    });
  };
  const after = (ms: number, step: () => Promise<void>) => {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = null;
      run(step);
    }, Math.max(1, ms));
  };

  /** Makes entries not seen before known, then queues what their `fill=` reaches back to. */
  async function backfill(startMs: number): Promise<void> {
    const { rows } = await pool.query<KnownCrontab>(KNOWN_CRONTABS);
    const known = new Map(rows.map((row) => [row.identifier, row]));
    const snapshot = [...items];
    const unknown = snapshot.filter((item) => !known.has(item.identifier)).map((item) => item.identifier);
    if (unknown.length > 0) await pool.query(KNOW_CRONTABS, [unknown, new Date(startMs).toISOString()]);
    const reach = Math.max(0, ...snapshot.map((item) => item.options.backfillPeriod));
    const ticks: number[] = [];
    for (let tick = ceilMinute(startMs - reach); reach > 0 && tick < startMs; tick += MINUTE) ticks.push(tick);
    const owed = (item: ParsedCronItem, tick: number) => {
      const record = known.get(item.identifier);
      if (!record || item.options.backfillPeriod < startMs - tick) return false;
      // The last tick queued is not owed again; an entry never queued is owed from when it became known.
      const from = record.last_execution ? record.last_execution.getTime() + 1 : record.known_since.getTime();
      return tick >= from && item.match(digestOf(tick));
    };
    // `?catchup=latest`: of the ticks owed, only the newest runs; the others are recorded missed.
    const newestOwed = new Map<ParsedCronItem, number>();
    for (const item of snapshot.filter(catchesUpLatest)) {
      const owedTicks = ticks.filter((tick) => owed(item, tick));
      if (owedTicks.length === 0) continue;
      const newest = owedTicks.at(-1)!;
      newestOwed.set(item, newest);
      if (owedTicks.length > 1) {
        await pool.query(RECORD_CATCHUP_MISSED, [item.identifier, item.task, owedTicks.slice(0, -1).map((tick) => new Date(tick).toISOString()), options.nodeId ?? null, new Date(newest).toISOString()]);
      }
    }
    // Minute by minute, in order: each tick's upsert advances last_execution (see above).
    for (const tick of ticks) {
      const due = snapshot.flatMap((item) => {
        if (!owed(item, tick) || (newestOwed.has(item) && newestOwed.get(item) !== tick)) return [];
        const record = known.get(item.identifier)!;
        return [{ identifier: item.identifier, job: jobFor(item, tick, true), known_since: record.known_since, last_execution: record.last_execution }];
      });
      if (due.length === 0) continue;
      events.emit("cron:backfill", { itemsToBackfill: due, timestamp: new Date(tick).toISOString() });
      await queueTick(pool, due, tick);
    }
  }

  /**
   * Ticks before `beforeMs` that no node queued (and fill= did not reach): recorded missed,
   * once, so the entry is not shown late for them. Secondary to queueing ticks: a failure is
   * said, and the loop goes on (the entry's next queued tick records them, sql/engine/021).
   */
  async function recordPassedTicks(beforeMs: number): Promise<void> {
    const identifiers = items.map((item) => item.identifier);
    if (identifiers.length === 0) return;
    try {
      const { rows } = await pool.query<{ entries: number }>(RECORD_PASSED_TICKS, [identifiers, new Date(beforeMs).toISOString(), options.nodeId ?? null]);
      const entries = rows[0]?.entries ?? 0;
      if (entries > 0) logger.info({ entries, before: new Date(beforeMs).toISOString() }, `ticks of ${entries} crontab entr${entries === 1 ? "y" : "ies"} passed while no node ran them; recorded as missed`);
    } catch (error) {
      logger.warn({ error: errorMessage(error) }, "recording the ticks passed before this node's start failed; the entries' next queued ticks record them");
    }
  }

  async function begin(): Promise<void> {
    const startMs = now();
    await backfill(startMs);
    await recordPassedTicks(startMs - QUEUED_WITHIN_MS);
    if (passedTimer) clearTimeout(passedTimer);
    passedTimer = setTimeout(() => {
      passedTimer = null;
      if (stopped) return;
      passInFlight = recordPassedTicks(startMs);
    }, QUEUED_WITHIN_MS);
    passedTimer.unref?.();
    // A start on a whole minute queues that minute live (backfill stops before it).
    next = ceilMinute(startMs);
    after(next - now(), tick);
  }

  async function tick(): Promise<void> {
    const current = now();
    // Early by the estimate (it moved since the timer was set): wait for the tick.
    if (current < next) return after(next - current, tick);
    failures = 0;
    const digest = digestOf(next);
    const jobs = items.filter((item) => item.match(digest)).map((item) => ({ identifier: item.identifier, job: jobFor(item, next, false) }));
    if (jobs.length > 0) {
      events.emit("cron:schedule", { timestamp: next, jobsAndIdentifiers: jobs });
      const queued = await queueTick(pool, jobs, next);
      if (!queued.due) {
        logger.debug({ tick: new Date(next).toISOString(), dueInMs: queued.dueInMs }, "a cron tick came early by the database's clock; waiting for it");
        return after(queued.dueInMs + 1, tick);
      }
      events.emit("cron:scheduled", { timestamp: next, jobsAndIdentifiers: jobs });
    }
    // One minute at a time: a loop that fell behind (a suspended process) catches up at once.
    next += MINUTE;
    after(next - now(), tick);
  }

  // At once, as graphile-worker's runner starts its cron: a node stopped right after its start
  // has made its entries known (and stop() waits for that).
  run(begin);
  const ready = inFlight;
  return {
    ready,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (passedTimer) clearTimeout(passedTimer);
      timer = null;
      passedTimer = null;
      await Promise.all([inFlight, passInFlight]);
    },
  };
}
