import type { Queryable } from "../db/pool.ts";
import { readSql } from "../db/sql-file.ts";

// The audit trail (scheduler.audit, sql/engine/030): who changed what by hand. Changes made
// in SQL record themselves in the same statement (pause_job, resume_job, the packs' functions
// and statements); this module reads the trail, prunes it, and records what has no function.

const LIST = readSql(import.meta.url, "list_audit.sql");

export interface AuditEntry {
  actor: string;
  action: string;
  target: string | null;
  detail?: Record<string, unknown>;
}

export interface AuditRow {
  id: number | string;
  at: Date;
  actor: string;
  db_role: string;
  action: string;
  target: string | null;
  detail: Record<string, unknown>;
  client_addr: string | null;
  application_name: string | null;
}

/** Records one row; returns its id. */
export async function recordAudit(db: Queryable, entry: AuditEntry): Promise<string> {
  const { rows } = await db.query<{ id: string }>("select scheduler.audit_record($1, $2, $3, $4::jsonb) as id", [entry.actor, entry.action, entry.target, JSON.stringify(entry.detail ?? {})]);
  return rows[0]!.id;
}

/** The latest `limit` rows, of `target` only when given, newest first. */
export async function listAudit(db: Queryable, options: { target?: string | null; limit: number }): Promise<AuditRow[]> {
  const { rows } = await db.query<AuditRow>(LIST, [options.target ?? null, options.limit]);
  return rows;
}

/** Deletes rows older than the retention, in batches (each its own statement); returns how many. */
export async function pruneAudit(db: Queryable, retentionDays: number, batchSize = 5000): Promise<number> {
  let total = 0;
  for (;;) {
    const { rows } = await db.query<{ n: number }>("select scheduler.audit_prune($1, $2) as n", [retentionDays, batchSize]);
    const deleted = rows[0]?.n ?? 0;
    total += deleted;
    if (deleted < batchSize) return total;
  }
}
