import type { Queryable } from "../../../engine/db/pool.ts";
import { readSql } from "../../../engine/db/sql-file.ts";
import { repeatInBatches } from "../../../engine/db/batch.ts";

const deleteCodes = readSql(import.meta.url, "delete_auth_codes.sql");
const countCodes = readSql(import.meta.url, "count_auth_codes.sql");
const deleteTokens = readSql(import.meta.url, "delete_refresh_tokens.sql");
const countTokens = readSql(import.meta.url, "count_refresh_tokens.sql");

async function count(db: Queryable, sql: string, now: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>(sql, [now]);
  return Number(rows[0]?.n ?? 0);
}

/** Authorization codes that expired before `now` (PostgreSQL text) or were used. */
export function cleanAuthCodes(db: Queryable, now: string, options: { enforce: boolean; batchSize: number; signal?: AbortSignal }): Promise<number> {
  return options.enforce ? repeatInBatches(db, deleteCodes, [now], options) : count(db, countCodes, now);
}

/** Refresh tokens that expired before `now` (PostgreSQL text). */
export function cleanRefreshTokens(db: Queryable, now: string, options: { enforce: boolean; batchSize: number; signal?: AbortSignal }): Promise<number> {
  return options.enforce ? repeatInBatches(db, deleteTokens, [now], options) : count(db, countTokens, now);
}
