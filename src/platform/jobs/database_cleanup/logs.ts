import type { Queryable } from "../../../engine/db/pool.ts";
import { readSql } from "../../../engine/db/sql-file.ts";
import { repeatInBatches } from "../../../engine/db/batch.ts";

const nextOldLogsBatch = readSql(import.meta.url, "next_old_logs_batch.sql");
const deleteOldLogsRange = readSql(import.meta.url, "delete_old_logs_range.sql");
const deleteOldLogsTie = readSql(import.meta.url, "delete_old_logs_tie.sql");
const deleteOldLogsPages = readSql(import.meta.url, "delete_old_logs_pages.sql");
const oldLogsLayout = readSql(import.meta.url, "old_logs_layout.sql");
const countOld = readSql(import.meta.url, "count_old_logs.sql");
const deleteOfUsers = readSql(import.meta.url, "delete_logs_of_users.sql");
const countOfUsers = readSql(import.meta.url, "count_logs_of_users.sql");

// Timestamps are PostgreSQL text ('-infinity' and 'infinity' allowed): a JS Date would drop
// the microseconds, and the edges must be exact.

interface NextBatch {
  last: boolean;
  upto: string | null;
  tie: string | null;
}

/** Pages read to choose the order of a delete (old_logs_layout.sql). */
export const LAYOUT_SAMPLE_PAGES = 200;
/**
 * What a batch statement aims at. Statements slower than this make the next batch smaller (and
 * faster ones let it grow back, never past batchSize): a slow disk or a busy server still gets
 * short statements. Well under the 250 ms that bench/cleanup.ts checks.
 */
export const STATEMENT_TARGET_MS = 100;

/**
 * timestamp: batches of consecutive "timestamp" ranges (logs_timestamp_idx), oldest first.
 * pages: a sweep of the heap in page ranges, deleting the old logs of each.
 * auto: pages when old logs are spread through the table so that timestamp batches would read
 * more pages in all than the table has (old_logs_layout.sql); timestamp otherwise.
 */
export type OldLogsOrder = "auto" | "timestamp" | "pages";

export interface OldLogsLayout {
  tablePages: number;
  oldLogs: number;
  keysetPages: number;
}

export interface OldLogsDeleted {
  deleted: number;
  order: Exclude<OldLogsOrder, "auto">;
  /** The sample behind an automatic choice; null when there was no choice to make. */
  layout: OldLogsLayout | null;
}

export interface DeleteOldLogsOptions {
  signal?: AbortSignal;
  order?: OldLogsOrder;
  /** Per-statement time aimed at (ms); STATEMENT_TARGET_MS by default. */
  targetMs?: number;
}

/** The next batch size: shrinks after a statement slower than the target, grows back (at most x2) when faster. */
function adapt(rows: number, elapsedMs: number, targetMs: number, max: number): number {
  const scale = Math.min(2, targetMs / Math.max(elapsedMs, 1));
  return Math.max(1, Math.min(max, Math.floor(rows * scale)));
}

async function timedQuery(db: Queryable, text: string, values: unknown[]): Promise<{ rows: number; ms: number }> {
  const started = performance.now();
  const { rowCount } = await db.query(text, values);
  return { rows: rowCount ?? 0, ms: performance.now() - started };
}

/**
 * Deletes logs older than `cutoff`, at most `batchSize` per statement, each statement its own
 * transaction. Two ways, chosen per run (see OldLogsOrder):
 *
 * - timestamp: a keyset walk. Each batch is a plain timestamp range starting after the previous
 *   one, found by an index-only scan, so neither the per-row lookups of a `where ctid in (...)`
 *   batch nor a re-walk of the dead index entries left by earlier batches is paid. Best when
 *   logs lie in the heap roughly in time order (appended), the usual case.
 * - pages: a sweep of the heap from its first page to the last page it had when the run began,
 *   in page ranges (delete_old_logs_pages.sql). Every page is read once, as one raw DELETE reads
 *   it. Best when old logs are spread through the table: then every timestamp batch of
 *   `batchSize` logs would touch most of the table's pages again.
 *
 * Either way only logs older than the cutoff are deleted, re-checked on each row as it is
 * deleted; logs written while the run goes on are younger and stay. An old log moved meanwhile
 * (updated into a page the sweep has passed, or back-dated behind the keyset) is left for the
 * next run, so running twice is safe and the second run finishes the job.
 */
export async function deleteOldLogs(db: Queryable, cutoff: string, batchSize: number, options: DeleteOldLogsOptions = {}): Promise<OldLogsDeleted> {
  const { signal } = options;
  const targetMs = options.targetMs ?? STATEMENT_TARGET_MS;
  let rows = batchSize;
  let deleted = 0;
  let after: string | null = null;
  let order: Exclude<OldLogsOrder, "auto"> = options.order === "pages" ? "pages" : "timestamp";
  let layout: OldLogsLayout | null = null;
  for (let first = true; ; first = false) {
    signal?.throwIfAborted();
    if (order === "pages") return { deleted: deleted + (await sweepOldLogs(db, cutoff, batchSize, targetMs, layout, signal)), order, layout };
    const batch: NextBatch = (await db.query<NextBatch>(nextOldLogsBatch, [after, cutoff, rows])).rows[0]!;
    if (first && !batch.last && (options.order ?? "auto") === "auto") {
      // More than one batch to delete: worth a look at where the old logs lie.
      layout = await readLayout(db, cutoff, batchSize);
      if (layout.keysetPages > layout.tablePages) {
        order = "pages";
        continue;
      }
    }
    if (batch.upto !== null) {
      const range = await timedQuery(db, deleteOldLogsRange, [after, batch.upto, cutoff]);
      deleted += range.rows;
      if (batch.last) return { deleted, order, layout };
      after = batch.upto;
      rows = adapt(rows, range.ms, targetMs, batchSize);
    } else {
      deleted += await repeatInBatches(db, deleteOldLogsTie, [batch.tie, cutoff], { batchSize: rows, signal });
      after = batch.tie;
    }
  }
}

async function readLayout(db: Queryable, cutoff: string, batchSize: number): Promise<OldLogsLayout> {
  const { rows } = await db.query<{ table_pages: string; old_logs: string; keyset_pages: string }>(oldLogsLayout, [cutoff, LAYOUT_SAMPLE_PAGES, batchSize]);
  const row = rows[0]!;
  return { tablePages: Number(row.table_pages), oldLogs: Number(row.old_logs), keysetPages: Number(row.keyset_pages) };
}

/**
 * The pages order: heap page ranges [from, to) from page 0 to the table's size when the sweep
 * began (later pages hold logs written since, younger than the cutoff). A range is sized to hold
 * about `rows` old logs (from the density met so far) and to be swept within the target time;
 * when a statement takes its full `rows`, the same range goes again until it yields fewer.
 */
async function sweepOldLogs(db: Queryable, cutoff: string, batchSize: number, targetMs: number, layout: OldLogsLayout | null, signal?: AbortSignal): Promise<number> {
  const { rows: sized } = await db.query<{ pages: string }>("select pg_relation_size('logs') / current_setting('block_size')::int as pages");
  const end = Number(sized[0]!.pages);
  let rows = batchSize;
  const density = layout && layout.tablePages > 0 ? layout.oldLogs / layout.tablePages : 0;
  let pages = density > 0 ? Math.ceil((0.8 * rows) / density) : 64;
  let deleted = 0;
  for (let from = 0; from < end; ) {
    signal?.throwIfAborted();
    const to = Math.min(end, from + pages);
    const step = await timedQuery(db, deleteOldLogsPages, [from, to, cutoff, rows]);
    deleted += step.rows;
    const full = step.rows >= rows;
    rows = adapt(rows, step.ms, targetMs, batchSize);
    // Size the next range: about 80% of `rows` old logs at the density just met, at most 4x
    // (a run of pages with no old log), and no more pages than fit in the target time.
    const byRows = step.rows > 0 ? ((to - from) * 0.8 * rows) / step.rows : (to - from) * 4;
    const byTime = ((to - from) * targetMs) / Math.max(step.ms, 1);
    pages = Math.max(1, Math.min(Math.round(byRows), Math.round(byTime), (to - from) * 4));
    // A full statement may have left old logs in its range: the range starts again (its
    // deleted rows are gone, so each pass takes new ones), else the sweep moves on.
    if (!full) from = to;
  }
  return deleted;
}

export async function countOldLogs(db: Queryable, cutoff: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>(countOld, [cutoff]);
  return Number(rows[0]?.n ?? 0);
}

export interface LogWindow {
  /** Inclusive. */
  from: string;
  /** Exclusive. */
  before: string;
}

/** Deletes the logs of those `userIds` that are (still) absent from users, in the window. */
export async function deleteLogsOfUsers(db: Queryable, userIds: string[], window: LogWindow, batchSize: number, signal?: AbortSignal): Promise<number> {
  if (userIds.length === 0) return 0;
  return repeatInBatches(db, deleteOfUsers, [userIds, window.from, window.before], { batchSize, signal });
}

export async function countLogsOfUsers(db: Queryable, userIds: string[], window: LogWindow): Promise<number> {
  if (userIds.length === 0) return 0;
  const { rows } = await db.query<{ n: string }>(countOfUsers, [userIds, window.from, window.before]);
  return Number(rows[0]?.n ?? 0);
}
