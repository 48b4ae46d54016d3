import type pg from "pg";
import type { TargetSessionAttrs } from "./connection-string.ts";

// What a server is to a client: a primary that takes writes, a standby (in recovery), or a
// primary that refuses writes (default_transaction_read_only = on: how Patroni demotes one
// when it loses its DCS, and how a provider fences it). A server of PostgreSQL 14 or later
// says so in the parameter statuses it reports at start-up (in_hot_standby,
// default_transaction_read_only) and again whenever they change; older servers, and poolers
// that pass on only a few parameters (PgBouncer), are asked with one query.

export interface ServerState {
  inRecovery: boolean;
  readOnly: boolean;
}

/** Parameter statuses a client has received, by name (kept by the connector's clients). */
export type ParameterStatuses = ReadonlyMap<string, string>;

const STATE_QUERY = "select pg_is_in_recovery() as in_recovery, current_setting('transaction_read_only') = 'on' as read_only";

/** The state the server reported, or null when it reported too little to tell. */
export function stateFromStatuses(statuses: ParameterStatuses): ServerState | null {
  const standby = statuses.get("in_hot_standby");
  const readOnly = statuses.get("default_transaction_read_only");
  if (standby === undefined || readOnly === undefined) return null;
  return { inRecovery: standby === "on", readOnly: standby === "on" || readOnly === "on" };
}

export async function readServerState(client: pg.ClientBase, statuses: ParameterStatuses): Promise<ServerState> {
  const reported = stateFromStatuses(statuses);
  if (reported) return reported;
  const { rows } = await client.query<{ in_recovery: boolean; read_only: boolean }>(STATE_QUERY);
  return { inRecovery: rows[0]!.in_recovery, readOnly: rows[0]!.in_recovery || rows[0]!.read_only };
}

/** Why a server does not suit `wanted` (libpq's target_session_attrs), or null when it does. */
export function mismatch(wanted: TargetSessionAttrs, state: ServerState): string | null {
  switch (wanted) {
    case "any":
      return null;
    case "read-write":
      return state.readOnly ? describeState(state) : null;
    case "primary":
      return state.inRecovery ? describeState(state) : null;
    case "read-only":
      return state.readOnly ? null : "takes writes (not read-only)";
    case "standby":
    case "prefer-standby":
      return state.inRecovery ? null : "is not a standby (not in recovery)";
  }
}

export function describeState(state: ServerState): string {
  if (state.inRecovery) return "is a standby (in recovery)";
  if (state.readOnly) return "is read-only (default_transaction_read_only = on: a demoted or fenced primary)";
  return "is a primary";
}

const READ_ONLY_SQLSTATE = "25006";

/**
 * True when a statement failed because its server refuses writes: SQLSTATE 25006
 * (read_only_sql_transaction, also raised as "cannot execute ... during recovery"), or
 * LISTEN refused on a standby.
 */
export function isReadOnlyError(error: unknown): boolean {
  for (let current = error; current; current = (current as { cause?: unknown }).cause) {
    if ((current as { code?: unknown }).code === READ_ONLY_SQLSTATE) return true;
    if (current instanceof ServerRoleError) return true;
    const message = current instanceof Error ? current.message : "";
    if (/cannot execute .* (during recovery|in a read-only transaction)/.test(message)) return true;
  }
  return false;
}

/** A connection was made but the server does not suit what the connection is for. */
export class ServerRoleError extends Error {
  readonly target: string;
  readonly problem: string;
  constructor(target: string, problem: string) {
    super(`${target} ${problem}`);
    this.name = "ServerRoleError";
    this.target = target;
    this.problem = problem;
  }
}
