import type { Queryable } from "../../../engine/db/pool.ts";
import { readSql } from "../../../engine/db/sql-file.ts";
import { repeatInBatches } from "../../../engine/db/batch.ts";
import { countLogsOfUsers, deleteLogsOfUsers, type LogWindow } from "./logs.ts";

const removedUserIds = readSql(import.meta.url, "removed_user_ids.sql");
const scanLogUserIds = readSql(import.meta.url, "scan_log_user_ids.sql");
const forgetRemoved = readSql(import.meta.url, "forget_removed_users.sql");

/** Ids handled per statement: small enough for short statements, big enough to amortise them. */
export const ID_CHUNK = 1000;

/** The ids the users triggers recorded (sql/005), in chunks. */
export async function* removedUserChunks(db: Queryable, chunkSize = ID_CHUNK): AsyncGenerator<string[]> {
  let after: string | null = null;
  for (;;) {
    const rows: { user_id: string }[] = (await db.query<{ user_id: string }>(removedUserIds, [after, chunkSize])).rows;
    if (rows.length > 0) yield rows.map((row) => row.user_id);
    if (rows.length < chunkSize) return;
    after = rows.at(-1)!.user_id;
  }
}

interface ScanStep {
  scanned: number;
  last_user_id: string | null;
  orphan_ids: string[];
}

/** The full scan: every distinct logs.user_id, in chunks, with those no user (or trigger) accounts for. */
export async function* logUserIdScan(db: Queryable, chunkSize = ID_CHUNK): AsyncGenerator<{ scanned: number; orphanIds: string[] }> {
  let after: string | null = null;
  for (;;) {
    const rows: ScanStep[] = (await db.query<ScanStep>(scanLogUserIds, [after, chunkSize])).rows;
    const step: ScanStep | undefined = rows[0];
    if (!step || step.scanned === 0) return;
    yield { scanned: step.scanned, orphanIds: step.orphan_ids };
    if (step.scanned < chunkSize) return;
    after = step.last_user_id;
  }
}

export interface OrphanedLogsOptions {
  enforce: boolean;
  /** Logs older than this went by age already. */
  logCutoff: string;
  /** Logs found by the full scan go only when older than this. */
  scanGraceCutoff: string;
  fullScan: boolean;
  batchSize: number;
  signal?: AbortSignal;
}

export interface OrphanedLogsResult {
  /** Logs of users the trigger saw removed. */
  ofRemovedUsers: number;
  /** Logs of ids found by the full scan: never in users, or removed while the trigger was not there. */
  foundByFullScan: number;
  userIdsScanned: number;
  orphanUserIds: number;
  removedUsersForgotten: number;
}

/**
 * Logs whose user_id is set but no longer in users. Every run: the logs of the users the
 * trigger recorded as removed, through logs_user_id_idx — the cost follows the logs deleted.
 * When `fullScan`: also every distinct user_id of logs, to catch ids the trigger never saw.
 */
export async function cleanOrphanedLogs(db: Queryable, options: OrphanedLogsOptions): Promise<OrphanedLogsResult> {
  const { enforce, batchSize, signal } = options;
  const apply = (ids: string[], window: LogWindow) =>
    enforce ? deleteLogsOfUsers(db, ids, window, batchSize, signal) : countLogsOfUsers(db, ids, window);

  const result: OrphanedLogsResult = { ofRemovedUsers: 0, foundByFullScan: 0, userIdsScanned: 0, orphanUserIds: 0, removedUsersForgotten: 0 };
  let removedIds = 0;
  for await (const ids of removedUserChunks(db)) {
    signal?.throwIfAborted();
    removedIds += ids.length;
    result.ofRemovedUsers += await apply(ids, { from: options.logCutoff, before: "infinity" });
  }
  if (options.fullScan) {
    for await (const step of logUserIdScan(db)) {
      signal?.throwIfAborted();
      result.userIdsScanned += step.scanned;
      result.orphanUserIds += step.orphanIds.length;
      result.foundByFullScan += await apply(step.orphanIds, { from: options.logCutoff, before: options.scanGraceCutoff });
    }
  }
  if (enforce && removedIds > 0) result.removedUsersForgotten = await repeatInBatches(db, forgetRemoved, [options.logCutoff], { batchSize, signal });
  return result;
}
