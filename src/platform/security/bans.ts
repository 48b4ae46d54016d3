import type { Queryable } from "../../engine/db/pool.ts";
import { readSql } from "../../engine/db/sql-file.ts";
import { repeatInBatches } from "../../engine/db/batch.ts";
import { applicationActor } from "../../engine/audit/actor.ts";

// The ban policy as seen from TypeScript. The policy itself is one SQL function,
// scheduler.ban_ips (sql/003_security.sql), used by both security jobs inside their own
// statements and by the CLI through scheduler.ban_ip; this module only calls it. A manual
// ban or unban records itself in the audit trail (scheduler.audit) under `actor`.

const banIpSql = readSql(import.meta.url, "ban_ip.sql");
const listBansSql = readSql(import.meta.url, "list_bans.sql");
const deleteExpiredSql = readSql(import.meta.url, "delete_expired_bans.sql");
const countExpiredSql = readSql(import.meta.url, "count_expired_bans.sql");

/** What the policy did (or, in a dry run, would do) with one address. */
export const BAN_OUTCOMES = [
  "created",
  "renewed",
  "extended",
  "made_permanent",
  "skipped_active",
  "skipped_permanent",
  "skipped_allowlisted",
  "invalid",
] as const;
export type BanOutcome = (typeof BAN_OUTCOMES)[number];

export interface BanResult {
  ip_address: string;
  requested: string;
  outcome: BanOutcome;
  reason: string | null;
  repeat_offences: number;
  ban_count: number | null;
  expires_at: Date | null;
  is_permanent: boolean;
  allowlisted_by: string | null;
}

export interface ManualBan {
  ip: string;
  reason: string;
  /** Null for a permanent ban. */
  durationSeconds: number | null;
  permanent: boolean;
  source?: string;
  /** Who bans, for the audit trail; default the application's package name, else "library". */
  actor?: string;
}

/** A manual ban: the duration as given (no escalation); lengthens an active ban, never shortens one. */
export async function banIp(db: Queryable, ban: ManualBan): Promise<BanResult> {
  const { rows } = await db.query<BanResult>(banIpSql, [ban.ip, ban.reason, ban.permanent ? null : ban.durationSeconds, ban.permanent, ban.source ?? "manual", ban.actor ?? applicationActor()]);
  return rows[0]!;
}

/** Lifts a ban; `forget` also clears the address's offence history. True when anything was removed. */
export async function unbanIp(db: Queryable, ip: string, forget = false, actor: string = applicationActor()): Promise<boolean> {
  const { rows } = await db.query<{ removed: boolean }>("select scheduler.unban_ip($1, $2, $3) as removed", [ip, forget, actor]);
  return rows[0]?.removed === true;
}

export interface BanRow {
  ip_address: string;
  reason: string | null;
  ban_source: string;
  banned_at: Date;
  expires_at: Date | null;
  is_permanent: boolean;
  ban_count: number;
  source_fingerprint: string | null;
  active: boolean;
  offences: number;
}

export async function listBans(db: Queryable, options: { activeOnly: boolean; limit: number }): Promise<BanRow[]> {
  const { rows } = await db.query<BanRow>(listBansSql, [options.activeOnly, options.limit]);
  return rows;
}

/**
 * Deletes expired, non-permanent bans in bounded batches (the end of both security jobs).
 * In a dry run it only counts them.
 */
export async function removeExpiredBans(db: Queryable, options: { enforce: boolean; batchSize: number; signal?: AbortSignal }): Promise<number> {
  if (!options.enforce) {
    const { rows } = await db.query<{ n: string }>(countExpiredSql);
    return Number(rows[0]?.n ?? 0);
  }
  return repeatInBatches(db, deleteExpiredSql, [], { batchSize: options.batchSize, signal: options.signal });
}
