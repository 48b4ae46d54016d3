import type { Registry } from "prom-client";
import type { EngineConfig } from "./config.ts";
import type { Pool, Queryable } from "./db/pool.ts";
import type { PackHttp } from "./http/types.ts";
import type { Logger } from "./log.ts";

// What a pack may bring to the engine: its migrations, its task files, its default crontab
// and bootstrap jobs, and loops each node runs beside the worker. The engine never names
// a pack; the platform's (src/platform) is one, and `startScheduler({ platform: false })`
// runs the engine with none. Plain data and functions: no registry, no classes.

/** What a pack's node loop gets when the node has started its worker. */
export interface PackNodeContext {
  config: EngineConfig;
  pool: Pool;
  host: string;
  nodeId: string;
  /** The node's connection string (null when the application passed its own pool). */
  connectionString: string | undefined;
  logger: Logger;
  /**
   * LISTEN on the node's own session (no connection of the pack's own): again after every
   * reconnect, then `onReconnect` (notifications may have been missed). Resolves to unlisten.
   */
  listen: SessionListen;
}

/** LISTEN on the node's session: `onReconnect` after each new session; resolves to unlisten. */
export type SessionListen = (channel: string, onNotification: (payload: string) => void, onReconnect?: () => void) => Promise<() => Promise<void>>;

/** A loop a pack runs on every node (e.g. the platform's service reconciler); stopped after the worker drains. */
export interface PackNodeLoop {
  stop(): Promise<void>;
}

export interface SchedulerPack {
  name: string;
  /**
   * Folder of `NNN_name.sql` migrations, applied after the engine's. Numbers are one
   * sequence across the engine and every pack (a clash is refused).
   */
  migrations?: string;
  /**
   * SQL file granting a runtime role the row rights the pack's jobs and loops need on its
   * tables, applied after the engine's (sql/grants/engine.sql) by `migrate --runtime-role`.
   * The placeholder :"runtime_role" stands for the role, substituted as a quoted identifier.
   */
  grants?: string;
  /**
   * SQL file granting an admin role what people may change and nodes may not (the platform's:
   * which programs its services run), applied by `migrate --admin-role`. The placeholder
   * :"admin_role" stands for the role. The runtime role's grants must not include these rights.
   */
  adminGrants?: string;
  /**
   * Tables the pack's migrations create only when missing and extend (indexes, triggers)
   * when another application created them first. Before migrating, the engine checks that
   * each one that exists has these columns (the pack's statements read them) and that the
   * role migrating may extend it (owns it); afterwards it reports what it added to each.
   */
  adopts?: readonly AdoptedTable[];
  /** Task files used when neither `taskDirectory` nor SCHEDULER_TASKS_DIR is given (the first pack's). */
  taskDirectory?: string;
  /** Crontab file used when neither `crontab`, `crontabPath` nor SCHEDULER_CRONTAB is given (the first pack's). */
  crontabPath?: string;
  /** Jobs queued once per start unless `bootstrapJobs` or SCHEDULER_BOOTSTRAP_JOBS says otherwise. */
  bootstrapJobs?: readonly string[];
  /**
   * Checks what the pack needs that no database is needed for, when the node is prepared:
   * a problem thrown here (a SchedulerError with exitCode 2) refuses the node before it
   * touches a database.
   */
  prepare?(context: { config: EngineConfig; logger: Logger }): void | Promise<void>;
  /** Started once the worker runs; null when there is nothing to run on this node. */
  startNode?(context: PackNodeContext): Promise<PackNodeLoop | null>;
  /**
   * The pack's cluster-wide gauges on /metrics (src/engine/http/metrics.ts): register them on
   * `registry` and return what refreshes them from `db` at scrape time (cached by the engine
   * with its own), so the engine never names a pack's tables.
   */
  metrics?(context: { registry: Registry; db: Queryable }): (() => Promise<void>) | null;
  /**
   * The pack's read-only JSON endpoints under /api/ and the dashboard panels drawn from them
   * (src/engine/http/types.ts): the page shows a pack's data without knowing its tables.
   */
  http?(context: { db: Queryable; config: EngineConfig }): PackHttp;
}

/** A table a pack adopts when it exists already (SchedulerPack.adopts). */
export interface AdoptedTable {
  /** As the pack's SQL names it (unqualified names follow the search_path). */
  table: string;
  /** The columns the pack's statements rely on. */
  columns: readonly string[];
}

/** The migration folders a database needs for these packs: the engine's first. */
export function migrationDirsOf(packs: readonly SchedulerPack[], engineMigrations: string): string[] {
  return [engineMigrations, ...packs.flatMap((pack) => (pack.migrations ? [pack.migrations] : []))];
}

/** The grant files for these packs: the engine's first. */
export function grantFilesOf(packs: readonly SchedulerPack[], engineGrants: string): string[] {
  return [engineGrants, ...packs.flatMap((pack) => (pack.grants ? [pack.grants] : []))];
}

/** The admin role's grant files of these packs (the engine has none). */
export function adminGrantFilesOf(packs: readonly SchedulerPack[]): string[] {
  return packs.flatMap((pack) => (pack.adminGrants ? [pack.adminGrants] : []));
}

/** Every table these packs adopt. */
export function adoptedTablesOf(packs: readonly SchedulerPack[]): AdoptedTable[] {
  return packs.flatMap((pack) => pack.adopts ?? []);
}
