import crypto from "node:crypto";
import type pg from "pg";
import { backoffMs, isConnectionError } from "./connection-errors.ts";
import { errorMessage, SchedulerError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Connector } from "./connector.ts";

// A node needs a database session that stays its own: graphile-worker LISTENs for new jobs
// and keeps prepared statements, and the scheduler holds session advisory locks (no overlap,
// node liveness). Behind a pooler in transaction or statement mode (PgBouncer's
// pool_mode=transaction) consecutive statements of one client may run on different server
// sessions: a node would take one job and fail to complete it. This check runs at start,
// before any job is taken, and refuses such a connection.
//
// How it tells: client A sets a session setting and notes its backend; client B then opens a
// transaction, which a transaction-mode pooler serves with the server connection A just gave
// back (PgBouncer reuses server connections last-in, first-out); A asks again. On a real
// session (direct, or session pooling) A still has its backend and its setting; otherwise
// either changed. A statement-mode pooler refuses B's transaction block outright.

export type SessionCheck = { ok: true } | { ok: false; mode: "transaction" | "statement"; evidence: string };

const PROBE_SETTING = "scheduler.session_probe";

export async function probeSessionPooling(connector: Connector): Promise<SessionCheck> {
  const token = crypto.randomBytes(8).toString("hex");
  const a = await connector.connect({ applicationName: "systemprompt-scheduler session check" });
  let b: pg.Client | null = null;
  try {
    b = await connector.connect({ applicationName: "systemprompt-scheduler session check" });
    const first = await a.query<{ pid: number }>("select pg_backend_pid() as pid, set_config($1, $2, false)", [PROBE_SETTING, token]);
    try {
      await b!.query("begin");
      await b!.query("select pg_backend_pid()");
    } catch (error) {
      if (/statement pooling|transaction blocks not allowed/i.test((error as Error).message)) {
        return { ok: false, mode: "statement", evidence: `a transaction block was refused: ${(error as Error).message}` };
      }
      throw error;
    }
    const again = await a.query<{ pid: number; probe: string | null }>("select pg_backend_pid() as pid, current_setting($1, true) as probe", [PROBE_SETTING]);
    await b!.query("rollback");
    const before = first.rows[0]!.pid;
    const after = again.rows[0]!;
    if (after.pid !== before || after.probe !== token) {
      return { ok: false, mode: "transaction", evidence: `one client's session changed between two statements (server process ${before}, then ${after.pid}; its session setting ${after.probe === token ? "kept" : "lost"})` };
    }
    return { ok: true };
  } finally {
    await Promise.all([a.end().catch(() => {}), b?.end().catch(() => {})]);
  }
}

/**
 * Refuses (exit 2) a connection whose sessions are not the client's own; see above. A server
 * that is full (too many clients), or a pooler that cannot reach it, is waited for with
 * back-off, for at most `waitMs`, said once.
 */
export async function requireSessionConnection(connector: Connector, target: string, options: { waitMs?: number; logger?: Logger } = {}): Promise<void> {
  const deadline = Date.now() + (options.waitMs ?? 0);
  let check: SessionCheck | null = null;
  for (let attempt = 0; !check; attempt++) {
    try {
      check = await probeSessionPooling(connector);
    } catch (error) {
      if (!isConnectionError(error) || Date.now() >= deadline) throw error;
      if (attempt === 0) options.logger?.warn({ error: errorMessage(error) }, "waiting for database connections to check the session (the server refuses or is full); retrying with back-off");
      await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt, 2000)));
    }
  }
  if (check.ok) return;
  throw new SchedulerError(
    "pooled_sessions",
    `the database connection (${target}) goes through a pooler in ${check.mode} mode: ${check.evidence}. A node needs a session of its own ` +
      "(LISTEN for new jobs, session advisory locks for no-overlap and node liveness, graphile-worker's prepared statements); in this mode it would take a job and fail to complete it",
    {
      hint: "connect nodes directly to PostgreSQL or through a session-mode pool (PgBouncer: pool_mode = session); CLI commands may keep using the transaction pool through their own DATABASE_URL",
      exitCode: 2,
    },
  );
}
