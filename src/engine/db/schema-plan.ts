import path from "node:path";
import { adoptedTablesOf, grantFilesOf, migrationDirsOf, type AdoptedTable, type SchedulerPack } from "../pack.ts";
import { projectRoot } from "./sql-file.ts";

/** The engine's own migrations; packs bring theirs (SchedulerPack.migrations). */
export const engineMigrations = path.join(projectRoot, "sql", "engine");

/** The rights a node needs on the engine's objects (SchedulerPack.grants for a pack's). */
export const engineGrants = path.join(projectRoot, "sql", "grants", "engine.sql");

/**
 * Everything the engine and a set of packs need of a database: migration folders, grant
 * files and adopted tables, the engine's first.
 */
export interface SchemaPlan {
  dirs: string[];
  grants: string[];
  adopts: AdoptedTable[];
}

export function schemaPlanOf(packs: readonly SchedulerPack[]): SchemaPlan {
  return { dirs: migrationDirsOf(packs, engineMigrations), grants: grantFilesOf(packs, engineGrants), adopts: adoptedTablesOf(packs) };
}
