import type { Queryable } from "../../../engine/db/pool.ts";
import { readSql } from "../../../engine/db/sql-file.ts";
import { repeatInBatches } from "../../../engine/db/batch.ts";
import { ID_CHUNK } from "./orphans.ts";

const scanContextIds = readSql(import.meta.url, "scan_mcp_context_ids.sql");
const deleteExecutions = readSql(import.meta.url, "delete_mcp_executions.sql");
const countExecutions = readSql(import.meta.url, "count_mcp_executions.sql");

interface ScanStep {
  scanned: number;
  last_context_id: string | null;
  orphan_ids: string[];
}

/**
 * MCP tool executions whose context is gone (opt-in: they are an audit record). Walks the
 * distinct context_id of mcp_tool_executions by a loose index scan, so the cost follows the
 * number of contexts that ran tools, not the number of executions. Executions without a
 * context_id never had one to lose and are kept.
 */
export async function cleanOrphanedMcpExecutions(db: Queryable, options: { enforce: boolean; batchSize: number; signal?: AbortSignal }): Promise<number> {
  let total = 0;
  let after: string | null = null;
  for (;;) {
    options.signal?.throwIfAborted();
    const rows: ScanStep[] = (await db.query<ScanStep>(scanContextIds, [after, ID_CHUNK])).rows;
    const step: ScanStep | undefined = rows[0];
    if (!step || step.scanned === 0) return total;
    if (step.orphan_ids.length > 0) {
      if (options.enforce) {
        total += await repeatInBatches(db, deleteExecutions, [step.orphan_ids], options);
      } else {
        const counted = await db.query<{ n: string }>(countExecutions, [step.orphan_ids]);
        total += Number(counted.rows[0]?.n ?? 0);
      }
    }
    if (step.scanned < ID_CHUNK) return total;
    after = step.last_context_id;
  }
}
