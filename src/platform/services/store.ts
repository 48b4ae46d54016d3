// The reconciler's reads and writes of the `services` table. Statements live in the .sql
// files beside this module; every write names the host, so a node only touches its own rows.
import { readSql } from "../../engine/db/sql-file.ts";
import type { Queryable } from "../../engine/db/pool.ts";
import type { ObservedUpdate } from "./plan.ts";
import type { RecordedStatus, ServiceRow } from "./types.ts";

const sql = {
  list: readSql(import.meta.url, "list_host_services.sql"),
  applyObservations: readSql(import.meta.url, "apply_observations.sql"),
  claimStart: readSql(import.meta.url, "claim_start.sql"),
  recordSpawn: readSql(import.meta.url, "record_spawn.sql"),
  recordFailure: readSql(import.meta.url, "record_failure.sql"),
  recordStopped: readSql(import.meta.url, "record_stopped.sql"),
  recordExit: readSql(import.meta.url, "record_exit.sql"),
  deleteStale: readSql(import.meta.url, "delete_stale.sql"),
  recordError: readSql(import.meta.url, "record_error.sql"),
  retryRefused: readSql(import.meta.url, "retry_refused.sql"),
};

/** Advisory-lock class for "reconciling host X"; the object id is hashtext(host). */
const HOST_LOCK_CLASS = 7_340_252;

export async function tryLockHost(db: Queryable, host: string): Promise<boolean> {
  const { rows } = await db.query<{ locked: boolean }>("select pg_try_advisory_lock($1, hashtext($2)) as locked", [HOST_LOCK_CLASS, host]);
  return rows[0]?.locked === true;
}

/** Waits for the host lock (for the CLI's `services stop`), at most `timeoutMs`. */
export async function lockHost(db: Queryable, host: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await tryLockHost(db, host)) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function unlockHost(db: Queryable, host: string): Promise<void> {
  await db.query("select pg_advisory_unlock($1, hashtext($2))", [HOST_LOCK_CLASS, host]);
}

export async function listHostServices(db: Queryable, host: string): Promise<ServiceRow[]> {
  const { rows } = await db.query<ServiceRow>(sql.list, [host]);
  return rows;
}

export async function applyObservations(db: Queryable, host: string, updates: (ObservedUpdate & { version: string })[]): Promise<number> {
  if (updates.length === 0) return 0;
  const { rowCount } = await db.query(sql.applyObservations, [host, JSON.stringify(updates)]);
  return rowCount ?? 0;
}

export interface ClaimedStart {
  name: string;
  host: string;
  command: string | null;
  args: string[];
  cwd: string | null;
  env: Record<string, string>;
  port: number | null;
  consecutive_failures: number;
}

export async function claimStart(db: Queryable, name: string, host: string, instanceId: string, restart: boolean): Promise<ClaimedStart | null> {
  const { rows } = await db.query<ClaimedStart>(sql.claimStart, [name, host, instanceId, restart ? 1 : 0]);
  return rows[0] ?? null;
}

export async function recordSpawn(db: Queryable, name: string, instanceId: string, identity: { pid: number; startTicks: string; bootId: string }): Promise<boolean> {
  const { rows } = await db.query(sql.recordSpawn, [name, instanceId, identity.pid, identity.startTicks, identity.bootId]);
  return rows.length > 0;
}

export async function recordFailure(
  db: Queryable,
  name: string,
  host: string,
  failure: { status: RecordedStatus; failures: number; backoffUntil: Date | null; error: string; forgetProcess: boolean },
): Promise<void> {
  await db.query(sql.recordFailure, [name, host, failure.status, failure.failures, failure.backoffUntil, failure.error, failure.forgetProcess]);
}

export async function recordStopped(db: Queryable, name: string, host: string, error: string | null = null): Promise<void> {
  await db.query(sql.recordStopped, [name, host, error]);
}

export async function recordExit(db: Queryable, name: string, instanceId: string, code: number | null, signal: string | null): Promise<void> {
  await db.query(sql.recordExit, [name, instanceId, code, signal]);
}

export async function deleteStale(db: Queryable, name: string, host: string, seenPid: number | null): Promise<boolean> {
  const { rows } = await db.query(sql.deleteStale, [name, host, seenPid]);
  return rows.length > 0;
}

export async function recordError(db: Queryable, name: string, host: string, error: string): Promise<void> {
  await db.query(sql.recordError, [name, host, error]);
}

/** Takes this host's services the allowlist refused out of `failed` (at reconciler start); returns their names. */
export async function retryRefused(db: Queryable, host: string, refusalPrefix: string): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(sql.retryRefused, [host, refusalPrefix]);
  return rows.map((row) => row.name);
}
