import type { Queryable } from "./pool.ts";

/**
 * Runs a bounded statement until it touches fewer rows than a full batch.
 * The statement takes the batch size as its last parameter and must change at
 * most that many rows (a `limit` in a CTE). Each run is its own short
 * transaction, so no lock is held for longer than one batch.
 */
export async function repeatInBatches(
  db: Queryable,
  sql: string,
  params: unknown[],
  options: { batchSize: number; signal?: AbortSignal; onBatch?: (rows: number) => void },
): Promise<number> {
  let total = 0;
  for (;;) {
    options.signal?.throwIfAborted();
    const { rowCount } = await db.query(sql, [...params, options.batchSize]);
    const rows = rowCount ?? 0;
    total += rows;
    options.onBatch?.(rows);
    if (rows < options.batchSize) return total;
  }
}
