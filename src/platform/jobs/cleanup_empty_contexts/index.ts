import { z } from "zod";
import type { Queryable } from "../../../engine/db/pool.ts";
import { readSql } from "../../../engine/db/sql-file.ts";
import { repeatInBatches } from "../../../engine/db/batch.ts";
import { defineJob } from "../../../engine/jobs/define.ts";

const readPlan = readSql(import.meta.url, "read_plan.sql");
const nextSliceEnd = readSql(import.meta.url, "next_slice_end.sql");
const deleteBatch = readSql(import.meta.url, "delete_empty_contexts.sql");
const countEmpty = readSql(import.meta.url, "count_empty_contexts.sql");
const recordPass = readSql(import.meta.url, "record_pass.sql");

interface Plan {
  now: string;
  cutoff: string;
  window_start: string | null;
  last_full_scan_at: string | null;
  full_scan_stale: boolean;
}

/** Why a run looks at every old context rather than only those created since the last run. */
export type FullScanReason = "requested" | "first run" | "stale";

export function fullScanReason(requested: boolean | undefined, plan: Pick<Plan, "window_start" | "full_scan_stale">): FullScanReason | null {
  if (requested === true) return "requested";
  // Without a watermark there is no narrower window to fall back on, whatever the payload says.
  if (plan.window_start === null) return "first run";
  if (requested === false) return null;
  return plan.full_scan_stale ? "stale" : null;
}

/**
 * Deletes the empty contexts created in [from, to). The range is walked in slices of about
 * `batchSize` contexts (by created_at, from the index), each cleaned by bounded batches, so
 * contexts that are kept (they have messages) are looked at once per run, not once per batch.
 * Timestamps are PostgreSQL text (`'-infinity'` allowed).
 */
export async function deleteEmptyContexts(db: Queryable, range: { from: string; to: string }, batchSize: number, signal?: AbortSignal): Promise<number> {
  let deleted = 0;
  let sliceStart = range.from;
  for (;;) {
    signal?.throwIfAborted();
    const { rows } = await db.query<{ slice_end: string; last: boolean }>(nextSliceEnd, [sliceStart, range.to, batchSize]);
    const slice = rows[0]!;
    deleted += await repeatInBatches(db, deleteBatch, [sliceStart, slice.slice_end], { batchSize, signal });
    if (slice.last) return deleted;
    sliceStart = slice.slice_end;
  }
}

export async function countEmptyContexts(db: Queryable, range: { from: string; to: string }): Promise<number> {
  const { rows } = await db.query<{ n: string }>(countEmpty, [range.from, range.to]);
  return Number(rows[0]?.n ?? 0);
}

export const cleanupEmptyContexts = defineJob({
  name: "cleanup_empty_contexts",
  description: "Deletes contexts older than retentionHours (default 1) with no messages, keeping those with MCP executions",
  payload: {
    retentionHours: z.number().positive().max(24 * 365).default(1),
    batchSize: z.number().int().min(1).max(100_000).default(5000),
    /** true: check every old context now; false: skip a due periodic full scan (never the first). */
    fullScan: z.boolean().optional(),
    fullScanDays: z.number().positive().max(365).default(7),
  },
  async run({ db, payload, enforce, signal }) {
    const { rows } = await db.query<Plan>(readPlan, [payload.retentionHours, payload.fullScanDays]);
    const plan = rows[0]!;
    const reason = fullScanReason(payload.fullScan, plan);
    const range = { from: reason ? "-infinity" : plan.window_start!, to: plan.cutoff };
    const details = { cutoff: plan.cutoff, scannedFrom: range.from, fullScan: reason };
    const scope = reason ? `full scan (${reason})` : "contexts created since the last run";

    if (!enforce) {
      const n = await countEmptyContexts(db, range);
      return { itemsProcessed: n, itemsFailed: 0, message: `dry run: would delete ${n} empty context(s); ${scope}`, details: { emptyContexts: n, ...details } };
    }
    const n = await deleteEmptyContexts(db, range, payload.batchSize, signal);
    await db.query(recordPass, [plan.cutoff, reason ? plan.now : null]);
    return { itemsProcessed: n, itemsFailed: 0, message: `deleted ${n} empty context(s); ${scope}`, details: { emptyContexts: n, ...details } };
  },
});
