import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { engineMigrations, listMigrations, migrate } from "../../src/engine/db/migrate.ts";
import type { Pool } from "../../src/engine/db/pool.ts";
import { schemaPlanOf } from "../../src/engine/db/schema-plan.ts";
import { projectRoot } from "../../src/engine/db/sql-file.ts";
import type { Logger } from "../../src/engine/log.ts";

/**
 * The engine's schema as it was before migration `version`: the numbered files before it,
 * without the repeatable ones (which are written for the current files). A later migrate
 * applies the rest, as an upgrade does.
 */
export async function migrateEngineBefore(pool: Pool, version: number, logger: Logger): Promise<void> {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), `sps-before-${version}-`));
  try {
    for (const migration of listMigrations([engineMigrations])) {
      if (migration.version < version) fs.copyFileSync(path.join(projectRoot, migration.file), path.join(folder, path.basename(migration.file)));
    }
    await migrate(pool, logger, { ...schemaPlanOf([]), dirs: [folder] });
  } finally {
    fs.rmSync(folder, { recursive: true, force: true });
  }
}
