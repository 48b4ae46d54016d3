import path from "node:path";
import { adminGrantFilesOf, adoptedTablesOf, grantFilesOf, migrationDirsOf, type AdoptedTable, type SchedulerPack } from "../pack.ts";
import { projectRoot } from "./sql-file.ts";

/** The engine's own migrations; packs bring theirs (SchedulerPack.migrations). */
export const engineMigrations = path.join(projectRoot, "sql", "engine");

/** The rights a node needs on the engine's objects (SchedulerPack.grants for a pack's). */
export const engineGrants = path.join(projectRoot, "sql", "grants", "engine.sql");

/**
 * Everything the engine and a set of packs need of a database: migration folders, grant
 * files (the runtime role's, the admin role's) and adopted tables, the engine's first.
 */
export interface SchemaPlan {
  dirs: string[];
  grants: string[];
  /** Only packs have them: the engine has nothing a node may not do. */
  adminGrants: string[];
  adopts: AdoptedTable[];
}

export function schemaPlanOf(packs: readonly SchedulerPack[]): SchemaPlan {
  return { dirs: migrationDirsOf(packs, engineMigrations), grants: grantFilesOf(packs, engineGrants), adminGrants: adminGrantFilesOf(packs), adopts: adoptedTablesOf(packs) };
}
