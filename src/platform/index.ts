import path from "node:path";
import { fileURLToPath } from "node:url";
import { projectRoot } from "../engine/db/sql-file.ts";
import type { SchedulerPack } from "../engine/pack.ts";
import { loadPlatformConfig, type PlatformConfig } from "./config.ts";
import { platformDomainTables } from "./domain-tables.ts";
import { platformHttp } from "./http.ts";
import { platformMetrics } from "./metrics.ts";
import { hostAllowlist, NOTHING_ALLOWED, type Allowlist } from "./services/allowlist.ts";
import { startServicesOfHost } from "./services/host.ts";
import type { ServiceReconcilerOptions } from "./services/loop.ts";

// The AI-agent platform as a pack of the engine: its domain tables and ban policy
// (sql/platform), its five jobs (tasks/ → src/platform/jobs), their crontab, the bootstrap
// job, the reconciler of this host's services, and its gauges and dashboard panels.

/** The platform's migrations. */
export const platformMigrations = path.join(projectRoot, "sql", "platform");

/** What a runtime role needs on the platform's tables (after the engine's grants). */
export const platformGrants = path.join(projectRoot, "sql", "grants", "platform.sql");

/** What only the admin role may do: register services and change what they run. */
export const platformAdminGrants = path.join(projectRoot, "sql", "grants", "platform_admin.sql");

/**
 * The platform's task files: `tasks/` beside `src/` in development, the compiled
 * `dist/tasks/` beside `dist/src/` in the package.
 */
export const platformTaskDirectory = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "tasks");

export interface PlatformOptions {
  /**
   * The reconciler of this host's services (src/platform/services): on unless false or
   * SCHEDULER_RECONCILE_SERVICES=false; an object overrides its options.
   */
  services?: boolean | Partial<ServiceReconcilerOptions>;
}

export function platformPack(options: PlatformOptions = {}): SchedulerPack {
  const services = options.services;
  // Read on the host when the node is prepared (a bad allowlist file refuses it, exit 2),
  // never from the database.
  let allowlist: Allowlist = NOTHING_ALLOWED;
  let config: PlatformConfig | null = null;
  return {
    name: "platform",
    migrations: platformMigrations,
    grants: platformGrants,
    adminGrants: platformAdminGrants,
    adopts: platformDomainTables,
    taskDirectory: platformTaskDirectory,
    crontabPath: path.join(projectRoot, "crontab"),
    bootstrapJobs: ["cleanup_inactive_sessions"],
    prepare() {
      config = loadPlatformConfig();
      if (services === false || !config.SCHEDULER_RECONCILE_SERVICES) return;
      allowlist = typeof services === "object" && services.allowlist ? services.allowlist : hostAllowlist(config);
    },
    metrics: platformMetrics,
    http: platformHttp,
    startNode: (node) => startServicesOfHost({ ...node, config: config ?? loadPlatformConfig(), allowlist, overrides: services }),
  };
}
