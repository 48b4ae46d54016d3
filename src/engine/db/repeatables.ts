import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Queryable } from "./pool.ts";
import { SchedulerError } from "../errors.ts";
import { projectRoot } from "./sql-file.ts";

// Repeatable files (`<migrations folder>/repeatable/*.sql`): definitions that are replaced as a
// whole, such as the scheduled_jobs view, kept in one file that is edited in place instead of
// repeated in every numbered migration that changes them. Each must be safe to run again
// (`create or replace`). migrate runs them after the numbered files, in name order: those whose
// text changed since they last ran, and all of them after any numbered file was applied (a
// migration may have dropped what they define). Recorded in scheduler.repeatable_migrations.

export interface Repeatable {
  /** The file relative to the package: its key in scheduler.repeatable_migrations. */
  file: string;
  sql: string;
  checksum: string;
}

const RECORD_TABLE = `create table if not exists scheduler.repeatable_migrations (
  file text primary key, checksum text not null, applied_at timestamptz not null default now())`;

const RECORD = `insert into scheduler.repeatable_migrations (file, checksum) values ($1, $2)
  on conflict (file) do update set checksum = excluded.checksum, applied_at = now()`;

/** The repeatable files of the given migration folders, each folder's in name order. */
export function listRepeatables(dirs: readonly string[]): Repeatable[] {
  return dirs.flatMap((dir) => {
    const folder = path.join(dir, "repeatable");
    if (!fs.existsSync(folder)) return [];
    return fs
      .readdirSync(folder)
      .filter((name) => name.endsWith(".sql"))
      .sort()
      .map((name) => {
        const sql = fs.readFileSync(path.join(folder, name), "utf8");
        return { file: path.relative(projectRoot, path.join(folder, name)), sql, checksum: crypto.createHash("sha256").update(sql).digest("hex").slice(0, 16) };
      });
  });
}

/** The checksum each repeatable file had when it last ran (none before the table exists). */
export async function appliedRepeatables(db: Queryable): Promise<Map<string, string>> {
  const { rows: [table] } = await db.query<{ exists: boolean }>("select to_regclass('scheduler.repeatable_migrations') is not null as exists");
  if (!table?.exists) return new Map();
  const { rows } = await db.query<{ file: string; checksum: string }>("select file, checksum from scheduler.repeatable_migrations");
  return new Map(rows.map((row) => [row.file, row.checksum]));
}

/** Those of `repeatables` whose text is not what last ran. */
export function staleRepeatables(repeatables: readonly Repeatable[], applied: Map<string, string>): Repeatable[] {
  return repeatables.filter((repeatable) => applied.get(repeatable.file) !== repeatable.checksum);
}

/**
 * Runs the stale repeatables (all of them when `all`), each in its own transaction, on a
 * client that holds the migration lock; returns the files run.
 */
export async function applyRepeatables(client: Queryable, repeatables: readonly Repeatable[], all: boolean): Promise<string[]> {
  await client.query(RECORD_TABLE);
  const due = all ? repeatables : staleRepeatables(repeatables, await appliedRepeatables(client));
  for (const repeatable of due) {
    try {
      await client.query("begin");
      await client.query(repeatable.sql);
      await client.query(RECORD, [repeatable.file, repeatable.checksum]);
      await client.query("commit");
    } catch (error) {
      await client.query("rollback").catch(() => {});
      throw new SchedulerError("migration_failed", `repeatable migration ${repeatable.file} failed: ${(error as Error).message}`, {
        hint: "it must be safe to run again as a whole (create or replace ...); a change it cannot make in place (a column dropped or renamed) needs a numbered migration first",
        cause: error,
      });
    }
  }
  return due.map((repeatable) => repeatable.file);
}
