import { z } from "zod";
import { readSql } from "../../../engine/db/sql-file.ts";
import { defineJob } from "../../../engine/jobs/define.ts";
import { cleanOrphanedMcpExecutions } from "./mcp.ts";
import { cleanAuthCodes, cleanRefreshTokens } from "./oauth.ts";
import { cleanOrphanedLogs } from "./orphans.ts";
import { countOldLogs, deleteOldLogs } from "./logs.ts";

const readPlan = readSql(import.meta.url, "read_plan.sql");
const recordFullScan = readSql(import.meta.url, "record_full_scan.sql");

/**
 * The full orphan scan cannot tell a removed user from one whose creating transaction has not
 * committed yet; it leaves logs younger than this alone (the next scan takes them).
 */
export const ORPHAN_SCAN_GRACE_MINUTES = 60;

interface Plan {
  now: string;
  log_cutoff: string;
  scan_grace_cutoff: string;
  last_full_scan_at: string | null;
  full_scan_requested_at: string | null;
  full_scan_stale: boolean;
}

/** Why this run also scans every distinct logs.user_id. */
export type FullScanReason = "requested" | "first run" | "users truncated" | "stale";

export function fullScanReason(requested: boolean | undefined, plan: Pick<Plan, "last_full_scan_at" | "full_scan_requested_at" | "full_scan_stale">): FullScanReason | null {
  if (requested !== undefined) return requested ? "requested" : null;
  if (plan.last_full_scan_at === null) return "first run";
  if (plan.full_scan_requested_at !== null) return "users truncated";
  return plan.full_scan_stale ? "stale" : null;
}

export const databaseCleanup = defineJob({
  name: "database_cleanup",
  description: "Deletes old and orphaned logs, expired or used OAuth codes, expired refresh tokens (and, opt-in, orphaned MCP executions)",
  // A first run on a big pre-existing database may have years of logs to delete. Every batch
  // commits, so a run cut short loses nothing: the next one continues.
  timeoutMs: 30 * 60_000,
  payload: {
    logRetentionDays: z.number().positive().max(3650).default(30),
    batchSize: z.number().int().min(1).max(100_000).default(20_000),
    purgeOrphanedMcpExecutions: z.boolean().default(false),
    /** true: scan every distinct logs.user_id now; false: skip a due scan this time. */
    fullOrphanScan: z.boolean().optional(),
    fullOrphanScanDays: z.number().positive().max(365).default(7),
  },
  async run({ db, payload, enforce, signal }) {
    const { rows } = await db.query<Plan>(readPlan, [payload.logRetentionDays, payload.fullOrphanScanDays, ORPHAN_SCAN_GRACE_MINUTES]);
    const plan = rows[0]!;
    const reason = fullScanReason(payload.fullOrphanScan, plan);
    const options = { enforce, batchSize: payload.batchSize, signal };

    // Age first: a log both old and orphaned is counted once, as old, in both modes.
    const byAge = enforce ? await deleteOldLogs(db, plan.log_cutoff, payload.batchSize, { signal }) : null;
    const oldLogs = byAge ? byAge.deleted : await countOldLogs(db, plan.log_cutoff);
    const orphans = await cleanOrphanedLogs(db, { ...options, logCutoff: plan.log_cutoff, scanGraceCutoff: plan.scan_grace_cutoff, fullScan: reason !== null });
    if (enforce && reason !== null) await db.query(recordFullScan, [plan.now]);
    const authCodes = await cleanAuthCodes(db, plan.now, options);
    const refreshTokens = await cleanRefreshTokens(db, plan.now, options);
    const mcpExecutions = payload.purgeOrphanedMcpExecutions ? await cleanOrphanedMcpExecutions(db, options) : null;

    const orphanedLogs = orphans.ofRemovedUsers + orphans.foundByFullScan;
    const total = oldLogs + orphanedLogs + authCodes + refreshTokens + (mcpExecutions ?? 0);
    const parts = [
      `${oldLogs} log(s) older than ${payload.logRetentionDays} day(s)`,
      `${orphanedLogs} orphaned log(s)`,
      `${authCodes} expired or used auth code(s)`,
      `${refreshTokens} expired refresh token(s)`,
      mcpExecutions === null ? "orphaned MCP executions kept (purge off)" : `${mcpExecutions} orphaned MCP execution(s)`,
    ];
    const scan = reason ? `; full orphan scan (${reason}) of ${orphans.userIdsScanned} user id(s)` : "";
    return {
      itemsProcessed: total,
      itemsFailed: 0,
      message: `${enforce ? "deleted" : "dry run: would delete"} ${total} row(s): ${parts.join(", ")}${scan}`,
      details: {
        oldLogs,
        orphanedLogs,
        authCodes,
        refreshTokens,
        orphanedMcpExecutions: mcpExecutions,
        logCutoff: plan.log_cutoff,
        // How the old logs were batched (logs.ts, deleteOldLogs): by timestamp range or by heap page range.
        oldLogsOrder: byAge?.order ?? null,
        oldLogsLayout: byAge?.layout ?? null,
        orphanScan: {
          ofRemovedUsers: orphans.ofRemovedUsers,
          fullScan: reason,
          foundByFullScan: orphans.foundByFullScan,
          userIdsScanned: orphans.userIdsScanned,
          orphanUserIds: orphans.orphanUserIds,
          removedUsersForgotten: orphans.removedUsersForgotten,
          lastFullScanAt: reason && enforce ? plan.now : plan.last_full_scan_at,
        },
      },
    };
  },
});
