import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { runMigrations as runGraphileMigrations } from "graphile-worker";
import { graphileLoggerFor, type Logger } from "../log.ts";
import { SchedulerError } from "../errors.ts";
import { adoptionReport, checkAdoptedTables, type AdoptionReport } from "./adoption.ts";
import { applicationActor } from "../audit/actor.ts";
import { recordAudit } from "../audit/trail.ts";
import { grantRole, rememberedRoles } from "./grants.ts";
import type { Pool, Queryable } from "./pool.ts";
import { applyRepeatables, listRepeatables } from "./repeatables.ts";
import { engineMigrations, type SchemaPlan } from "./schema-plan.ts";
import { projectRoot } from "./sql-file.ts";

export { engineMigrations } from "./schema-plan.ts";

/** Any fixed number: every node takes this lock before migrating, so they queue. */
const MIGRATION_LOCK = 7_340_251_001;

export interface Migration {
  version: number;
  /** The file, relative to the package (for messages). */
  file: string;
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrateResult {
  /** Our migration files applied now: numbered ones, then repeatable ones (repeatables.ts). */
  applied: string[];
  /** What was added to platform tables that existed before (SchedulerPack.adopts). */
  adopted: AdoptionReport[];
  /** Runtime roles granted now: the one asked for, and every one granted before (scheduler.runtime_roles). */
  granted: string[];
  /** Admin roles granted now, likewise (scheduler.admin_roles). */
  grantedAdmin: string[];
}

/** Every migration of the given folders, in version order; a number used twice is refused. */
export function listMigrations(dirs: readonly string[] = [engineMigrations]): Migration[] {
  const seen = new Map<number, string>();
  return dirs.flatMap((dir) => migrationsIn(dir, seen)).sort((a, b) => a.version - b.version);
}

function migrationsIn(dir: string, seen: Map<number, string>): Migration[] {
  const files = fs.readdirSync(dir).filter((file) => file.endsWith(".sql")).sort();
  return files.map((file) => {
    const match = /^(\d+)_([a-z0-9_]+)\.sql$/.exec(file);
    if (!match) {
      throw new SchedulerError("bad_migration_name", `migration file ${path.join(dir, file)} is not named NNN_name.sql`, {
        hint: "rename it to a number, an underscore and a lower-case name, e.g. 004_add_index.sql",
      });
    }
    const version = Number(match[1]);
    const relative = path.relative(projectRoot, path.join(dir, file));
    const clash = seen.get(version);
    if (clash) throw new SchedulerError("duplicate_migration", `migrations ${clash} and ${relative} share the number ${version}`, { hint: "give one of them the next free number (one sequence across sql/engine and every pack)" });
    seen.set(version, relative);
    const sql = fs.readFileSync(path.join(dir, file), "utf8");
    return { version, file: relative, name: match[2] ?? file, sql, checksum: crypto.createHash("sha256").update(sql).digest("hex").slice(0, 16) };
  });
}

/** The migrations recorded in scheduler.migrations (none when the table does not exist yet). */
export async function appliedMigrations(db: Queryable): Promise<Map<number, { name: string; checksum: string }>> {
  const { rows: [table] } = await db.query<{ exists: boolean }>("select to_regclass('scheduler.migrations') is not null as exists");
  if (!table?.exists) return new Map();
  const { rows } = await db.query<{ version: number; checksum: string; name: string }>("select version, name, checksum from scheduler.migrations");
  return new Map(rows.map((row) => [row.version, row]));
}

/** graphile-worker's latest applied migration (null before its schema exists). */
export async function appliedGraphileMigration(db: Queryable): Promise<number | null> {
  const { rows: [table] } = await db.query<{ exists: boolean }>("select to_regclass('graphile_worker.migrations') is not null as exists");
  if (!table?.exists) return null;
  const { rows } = await db.query<{ id: number | null }>("select max(id) as id from graphile_worker.migrations");
  return rows[0]?.id ?? null;
}

/**
 * graphile-worker's own schema first (our view reads its tables), then the engine's and
 * the packs' (`plan.dirs`), then their repeatable files (repeatables.ts): each pending file in its own transaction, under one advisory lock
 * so nodes starting together apply every file exactly once. Tables another application
 * created first are checked before anything is applied (checkAdoptedTables). Roles are
 * granted last: `runtimeRole` and `adminRole`, and every role granted before. A migrate that
 * changed something (a file applied, a table adopted, a role granted for the first time) is
 * recorded in the audit trail under `actor`, once.
 */
export async function migrate(pool: Pool, logger: Logger, plan: SchemaPlan, options: { runtimeRole?: string; adminRole?: string; actor?: string } = {}): Promise<MigrateResult> {
  checkRoleOptions(plan, options);
  const migrations = listMigrations(plan.dirs);
  const client = await pool.connect();
  const applied: string[] = [];
  let adopted: AdoptionReport[] = [];
  let roles = new Set<string>();
  let adminRoles = new Set<string>();
  try {
    await client.query("select pg_advisory_lock($1)", [MIGRATION_LOCK]);
    const done = await appliedMigrations(client);
    const pending = migrations.filter((migration) => !done.has(migration.version));
    const adoptedBefore = pending.length > 0 ? await checkAdoptedTables(client, plan.adopts) : new Map();

    await runGraphileMigrations({ pgPool: pool, logger: graphileLoggerFor(logger) });

    await client.query(`create schema if not exists scheduler;
      create table if not exists scheduler.migrations (
        version int primary key, name text not null, checksum text not null, applied_at timestamptz not null default now())`);
    for (const migration of migrations) {
      const previous = done.get(migration.version);
      if (previous) {
        if (previous.checksum !== migration.checksum) {
          logger.warn({ migration: migration.file }, "an applied migration file was edited since; edits to applied migrations are not re-run, add a new file instead");
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
        throw new SchedulerError("migration_failed", `migration ${migration.file} failed: ${(error as Error).message}`, { cause: error });
      }
      applied.push(migration.file);
      logger.info({ migration: migration.file }, "migration applied");
    }
    // After the numbered files: a view defined in a repeatable file reads what they made.
    const numbered = applied.length;
    applied.push(...(await applyRepeatables(client, listRepeatables(plan.dirs), numbered > 0)));
    for (const file of applied.slice(numbered)) logger.info({ migration: file }, "repeatable migration applied");
    if (adoptedBefore.size > 0) {
      adopted = await adoptionReport(client, plan.adopts, adoptedBefore);
      for (const report of adopted) logger.info({ table: report.table, owner: report.owner, added: report.added }, `adopted the platform's table ${report.table}: added ${report.added.join(", ")}`);
    }

    // Every migrate grants the roles granted before again: an upgrade's new tables (or a new
    // right on an old one, or graphile-worker's tables recreated) are covered without anyone
    // remembering to. Idempotent; nodes call migrate only when the schema is not current.
    // Under the lock: two GRANTs on one object at once can fail.
    roles = new Set<string>(await rememberedRoles(client));
    const newRoles: string[] = [];
    if (options.runtimeRole !== undefined && !roles.has(options.runtimeRole)) newRoles.push(options.runtimeRole);
    if (options.runtimeRole !== undefined) roles.add(options.runtimeRole);
    for (const role of roles) await grantRole(client, plan.grants, role, "runtime", logger);
    // Admin roles after runtime roles: a role moved from one kind to the other ends with its new rights.
    if (plan.adminGrants.length > 0) {
      adminRoles = new Set<string>(await rememberedRoles(client, "admin"));
      if (options.adminRole !== undefined && !adminRoles.has(options.adminRole)) newRoles.push(options.adminRole);
      if (options.adminRole !== undefined) adminRoles.add(options.adminRole);
      for (const role of adminRoles) await grantRole(client, plan.adminGrants, role, "admin", logger);
    }
    // Recorded where the trail exists (a plan may stop before its migration, as tests' do).
    const trailExists = (await client.query<{ ok: boolean }>("select to_regprocedure('scheduler.audit_record(text, text, text, jsonb)') is not null as ok")).rows[0]!.ok;
    if (trailExists && (applied.length > 0 || adopted.length > 0 || newRoles.length > 0)) {
      await recordAudit(client, {
        actor: options.actor ?? applicationActor(),
        action: "migrate",
        target: (await client.query<{ db: string }>("select current_database() as db")).rows[0]!.db,
        detail: { applied, adopted: adopted.map((report) => ({ table: report.table, added: report.added })), runtime_roles: [...roles], admin_roles: [...adminRoles], new_roles: newRoles },
      });
    }
  } finally {
    await client.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => {});
    client.release();
  }
  return { applied, adopted, granted: [...roles], grantedAdmin: [...adminRoles] };
}

/** Refuses, before anything is applied, an admin role with nothing to grant or one that is also the runtime role. */
function checkRoleOptions(plan: SchemaPlan, options: { runtimeRole?: string; adminRole?: string }): void {
  if (options.adminRole === undefined) return;
  if (plan.adminGrants.length === 0) {
    throw new SchedulerError("no_admin_grants", "no admin role is needed here: none of the packs has rights for one (the engine alone has only the runtime role)", { hint: "leave out --admin-role", exitCode: 2 });
  }
  if (options.adminRole === options.runtimeRole) {
    throw new SchedulerError("role_kind_conflict", `role '${options.adminRole}' cannot be both the runtime role and the admin role`, {
      hint: "the nodes connect as the runtime role, which must not be able to change what services run: name two roles",
      exitCode: 2,
    });
  }
}
