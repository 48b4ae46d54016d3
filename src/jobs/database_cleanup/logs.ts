import type { Queryable } from "../../db/pool.ts";
import { readSql } from "../../db/sql-file.ts";
import { repeatInBatches } from "../../db/batch.ts";

const nextOldLogsBatch = readSql(import.meta.url, "next_old_logs_batch.sql");
const deleteOldLogsRange = readSql(import.meta.url, "delete_old_logs_range.sql");
const deleteOldLogsTie = readSql(import.meta.url, "delete_old_logs_tie.sql");
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

/**
 * Deletes logs older than `cutoff`, at most `batchSize` per statement, oldest first.
 * Unlike repeatInBatches this walks a keyset: each batch is a plain timestamp range starting
 * after the previous one, found by an index-only scan, so neither the per-row lookups of a
 * `where ctid in (...)` batch nor a re-walk of the dead index entries left by earlier batches
 * is paid — the bulk of database_cleanup's rows go this way (bench/cleanup.ts).
 */
export async function deleteOldLogs(db: Queryable, cutoff: string, batchSize: number, signal?: AbortSignal): Promise<number> {
  let deleted = 0;
  let after: string | null = null;
  for (;;) {
    signal?.throwIfAborted();
    const batch: NextBatch = (await db.query<NextBatch>(nextOldLogsBatch, [after, cutoff, batchSize])).rows[0]!;
    if (batch.upto !== null) {
      const { rowCount } = await db.query(deleteOldLogsRange, [after, batch.upto, cutoff]);
      deleted += rowCount ?? 0;
      if (batch.last) return deleted;
      after = batch.upto;
    } else {
      deleted += await repeatInBatches(db, deleteOldLogsTie, [batch.tie, cutoff], { batchSize, signal });
      after = batch.tie;
    }
  }
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
