import { grantsSql } from "./engine/db/grants.ts";
import { migrate as migratePlan, type MigrateResult } from "./engine/db/migrate.ts";
import { schemaPlanOf } from "./engine/db/schema-plan.ts";
import type { Pool } from "./engine/db/pool.ts";
import { createLogger, type Logger } from "./engine/log.ts";
import type { SchedulerPack } from "./engine/pack.ts";
import type { SchedulerHandle, SchedulerOptions as EngineOptions } from "./engine/runner/options.ts";
import { prepareScheduler as prepareEngine, type PreparedScheduler } from "./engine/runner/prepare.ts";
import { launchScheduler } from "./engine/runner/start.ts";
import { platformPack, type PlatformOptions } from "./platform/index.ts";

// The composition of the engine and the platform pack that `npm start` and the library's
// default run. `platform: false` is the engine alone.

export interface SchedulerOptions extends EngineOptions, PlatformOptions {
  /**
   * true (default): the AI-agent platform's tables, five jobs, crontab, bootstrap job and
   * service reconciler. false: the scheduler engine alone (its own schema, your jobs).
   */
  platform?: boolean;
}

/** The packs these options ask for: the platform's (unless `platform: false`), then any given. */
export function packsFor(options: SchedulerOptions): SchedulerPack[] {
  const platform = options.platform === false ? [] : [platformPack({ services: options.services })];
  return [...platform, ...(options.packs ?? [])];
}

/** Checks everything that needs no database (see the engine's prepareScheduler). */
export function prepareScheduler(options: SchedulerOptions = {}): Promise<PreparedScheduler> {
  return prepareEngine({ ...options, packs: packsFor(options) });
}

/**
 * Starts a scheduler node: checks configuration, task files and crontab, connects,
 * migrates, runs graphile-worker with the node's loops. Signals are the caller's: call stop().
 */
export async function startScheduler(options: SchedulerOptions = {}): Promise<SchedulerHandle> {
  return launchScheduler(await prepareScheduler(options));
}

export interface MigrateOptions {
  platform?: boolean;
  packs?: SchedulerPack[];
  logger?: Logger;
  /**
   * A role the nodes connect as: granted exactly the row rights a node needs (sql/grants/),
   * and granted again by every later migrate.
   */
  runtimeRole?: string;
  /**
   * A role people use to register services and change what they run (which the runtime role
   * may not): granted the platform's admin rights (sql/grants/platform_admin.sql), and granted
   * again by every later migrate. Never the runtime role.
   */
  adminRole?: string;
  /** Who the audit trail says migrated (when anything changed); default the application's package name, else "library". */
  actor?: string;
}

/**
 * Applies pending migrations: graphile-worker's, the engine's and, unless `platform: false`,
 * the platform's (plus any packs'). What `startScheduler` does first when the schema is not
 * current; safe to run concurrently. Run it as the owner; `runtimeRole` names the nodes' role.
 */
export function migrate(pool: Pool, options: MigrateOptions = {}): Promise<MigrateResult> {
  return migratePlan(pool, options.logger ?? createLogger("warn"), schemaPlanOf(packsFor(options)), { runtimeRole: options.runtimeRole, adminRole: options.adminRole, actor: options.actor });
}

/** The SQL `migrate({ runtimeRole })` grants with, for a DBA to review and apply. */
export function runtimeGrantsSql(role: string, options: { platform?: boolean; packs?: SchedulerPack[] } = {}): string {
  return grantsSql(schemaPlanOf(packsFor(options)).grants, role);
}

/** Whether these packs have rights for an admin role (the platform has; the engine alone has not). */
export function hasAdminGrants(options: { platform?: boolean; packs?: SchedulerPack[] } = {}): boolean {
  return schemaPlanOf(packsFor(options)).adminGrants.length > 0;
}

/** The SQL `migrate({ adminRole })` grants with; empty when no pack has admin rights (`platform: false`). */
export function adminGrantsSql(role: string, options: { platform?: boolean; packs?: SchedulerPack[] } = {}): string {
  return grantsSql(schemaPlanOf(packsFor(options)).adminGrants, role, "admin");
}
