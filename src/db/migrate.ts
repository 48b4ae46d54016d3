import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { runMigrations as runGraphileMigrations } from "graphile-worker";
import { graphileLoggerFor, type Logger } from "../log.ts";
import { SchedulerError } from "../errors.ts";
import type { Pool } from "./pool.ts";
import { projectRoot } from "./sql-file.ts";

export const migrationsDir = path.join(projectRoot, "sql");

/** Any fixed number: every node takes this lock before migrating, so they queue. */
const MIGRATION_LOCK = 7_340_251_001;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export function listMigrations(dir = migrationsDir): Migration[] {
  const files = fs.readdirSync(dir).filter((file) => file.endsWith(".sql")).sort();
  const seen = new Map<number, string>();
  return files.map((file) => {
    const match = /^(\d+)_([a-z0-9_]+)\.sql$/.exec(file);
    if (!match) {
      throw new SchedulerError("bad_migration_name", `migration file ${path.join(dir, file)} is not named NNN_name.sql`, {
        hint: "rename it to a number, an underscore and a lower-case name, e.g. 004_add_index.sql",
      });
    }
    const version = Number(match[1]);
    const clash = seen.get(version);
    if (clash) throw new SchedulerError("duplicate_migration", `migrations ${clash} and ${file} share the number ${version}`, { hint: "give one of them the next free number" });
    seen.set(version, file);
    const sql = fs.readFileSync(path.join(dir, file), "utf8");
    return { version, name: match[2] ?? file, sql, checksum: crypto.createHash("sha256").update(sql).digest("hex").slice(0, 16) };
  });
}

/**
 * graphile-worker's own schema first (our view reads its tables), then ours:
 * each pending file in its own transaction, under one advisory lock so nodes
 * starting together apply every file exactly once.
 */
export async function migrate(pool: Pool, logger: Logger): Promise<{ applied: string[] }> {
  await runGraphileMigrations({ pgPool: pool, logger: graphileLoggerFor(logger) });
  const migrations = listMigrations();
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query("select pg_advisory_lock($1)", [MIGRATION_LOCK]);
    await client.query(`create schema if not exists scheduler;
      create table if not exists scheduler.migrations (
        version int primary key, name text not null, checksum text not null, applied_at timestamptz not null default now())`);
    const { rows } = await client.query<{ version: number; checksum: string; name: string }>("select version, name, checksum from scheduler.migrations");
    const done = new Map(rows.map((row) => [row.version, row]));
    for (const migration of migrations) {
      const previous = done.get(migration.version);
      if (previous) {
        if (previous.checksum !== migration.checksum) {
          logger.warn({ migration: `${migration.version}_${migration.name}` }, "an applied migration file was edited since; edits to applied migrations are not re-run, add a new file instead");
        }
        continue;
      }
      try {
        await client.query("begin");
        await client.query(migration.sql);
        await client.query("insert into scheduler.migrations (version, name, checksum) values ($1, $2, $3)", [migration.version, migration.name, migration.checksum]);
        await client.query("commit");
      } catch (error) {
        await client.query("rollback").catch(() => {});
        throw new SchedulerError("migration_failed", `migration sql/${String(migration.version).padStart(3, "0")}_${migration.name}.sql failed: ${(error as Error).message}`, { cause: error });
      }
      applied.push(`${migration.version}_${migration.name}`);
      logger.info({ migration: `${migration.version}_${migration.name}` }, "migration applied");
    }
  } finally {
    await client.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => {});
    client.release();
  }
  return { applied };
}
