import fs from "node:fs";
import path from "node:path";
import pg from "pg";
import { SchedulerError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Queryable } from "./pool.ts";
import { projectRoot } from "./sql-file.ts";

// The rights of the roles `migrate` grants: grant files (one per pack) with the role put in
// as a quoted identifier. Two kinds:
// - the runtime role (sql/grants/*.sql, `migrate --runtime-role`): what a node needs;
// - the admin role (SchedulerPack.adminGrants, `migrate --admin-role`): what only people may
//   change, e.g. which programs the platform's services run. Never a node's role.
// migrate remembers each role it granted (scheduler.runtime_roles, scheduler.admin_roles), so
// that every later migrate, e.g. after an upgrade, grants it the new objects too;
// `migrate --print-grants` prints the SQL for a DBA (who re-applies it).

export type RoleKind = "runtime" | "admin";

interface KindFacts {
  placeholder: RegExp;
  /** Where migrate remembers the roles of this kind (the owner's only). */
  table: string;
  label: string;
  option: string;
}

const KINDS: Record<RoleKind, KindFacts> = {
  runtime: { placeholder: /:"runtime_role"/g, table: "scheduler.runtime_roles", label: "runtime role", option: "--runtime-role" },
  admin: { placeholder: /:"admin_role"/g, table: "scheduler.admin_roles", label: "admin role", option: "--admin-role" },
};

const OTHER: Record<RoleKind, RoleKind> = { runtime: "admin", admin: "runtime" };

// scheduler.runtime_roles is made by sql/engine/011; this one when the first admin role is
// granted (only packs that bring admin grants need it), like migrate's own bookkeeping tables.
const ADMIN_ROLES_TABLE = `create table if not exists scheduler.admin_roles (
  role_name name primary key, granted_at timestamptz not null default now(), granted_by name not null default current_user)`;

/** The role as a quoted SQL identifier; a name PostgreSQL could not hold is refused. */
export function quoteRole(role: string): string {
  if (role.length === 0 || role.includes("\0") || Buffer.byteLength(role) > 63) {
    throw new SchedulerError("bad_role_name", `'${role}' cannot be a PostgreSQL role name`, { hint: "give the name of an existing role (at most 63 bytes)", exitCode: 2 });
  }
  return pg.escapeIdentifier(role);
}

/** The grant SQL of these files for `role`, each file introduced by its name. */
export function grantsSql(files: readonly string[], role: string, kind: RoleKind = "runtime"): string {
  const quoted = quoteRole(role);
  return files
    .map((file) => `-- ${path.relative(projectRoot, file)}\n${fs.readFileSync(file, "utf8").replace(KINDS[kind].placeholder, () => quoted).trimEnd()}\n`)
    .join("\n");
}

/**
 * Grants `role` the rights of its kind, in one transaction on `client` (a connection of its
 * own: the caller holds the migration lock on it, as two GRANTs on one object at once can
 * fail), and remembers it. The role must exist: creating it (and its password) is the DBA's
 * business. A role is of one kind only: the nodes' role must never be the one that may
 * change what runs.
 */
export async function grantRole(client: Queryable, files: readonly string[], role: string, kind: RoleKind, logger: Logger): Promise<void> {
  const facts = KINDS[kind];
  const sql = grantsSql(files, role, kind);
  try {
    const { rows } = await client.query<{ exists: boolean; is_me: boolean; superuser: boolean }>(
      "select exists (select 1 from pg_roles where rolname = $1) as exists, $1 = current_user as is_me, coalesce((select rolsuper from pg_roles where rolname = $1), false) as superuser",
      [role],
    );
    const found = rows[0]!;
    if (!found.exists) {
      throw new SchedulerError("unknown_role", `role '${role}' does not exist`, { hint: `create it first, e.g. create role ${quoteRole(role)} login password '…' (then run this again)`, exitCode: 2 });
    }
    if (found.is_me) {
      throw new SchedulerError(`${kind}_role_is_owner`, `the ${facts.label} '${role}' is the role running migrate; it owns the schema already`, { hint: "connect as the owner (migration) role and name another role", exitCode: 2 });
    }
    if (await isRemembered(client, role, OTHER[kind])) {
      const other = KINDS[OTHER[kind]];
      throw new SchedulerError("role_kind_conflict", `role '${role}' is already the ${other.label}; the runtime role and the admin role must be two roles`, {
        hint: `name another role for ${facts.option}; the nodes connect as the runtime role, which must not be able to change what services run (to move '${role}', as the owner: delete from ${other.table} where role_name = '${role}', then run migrate ${facts.option} again)`,
        exitCode: 2,
      });
    }
    if (found.superuser) logger.warn({ role }, `the ${facts.label} is a superuser: grants cannot limit it`);
    await client.query("begin");
    if (kind === "admin") await client.query(ADMIN_ROLES_TABLE);
    await client.query(sql);
    await client.query(
      `insert into ${facts.table} (role_name, granted_by) values ($1, current_user)
       on conflict (role_name) do update set granted_at = now(), granted_by = current_user`,
      [role],
    );
    await client.query("commit");
    logger.info({ role }, `granted the ${facts.label} its rights`);
  } catch (error) {
    await client.query("rollback").catch(() => {});
    if (error instanceof SchedulerError) throw error;
    throw new SchedulerError("grant_failed", `granting role '${role}' failed: ${(error as Error).message}`, { hint: `run migrate ${facts.option} as the role that owns the scheduler's schema (and the platform's tables)`, cause: error });
  }
}

async function tableExists(db: Queryable, table: string): Promise<boolean> {
  const { rows: [found] } = await db.query<{ exists: boolean }>("select to_regclass($1) is not null as exists", [table]);
  return found?.exists === true;
}

async function isRemembered(db: Queryable, role: string, kind: RoleKind): Promise<boolean> {
  const { table } = KINDS[kind];
  if (!(await tableExists(db, table))) return false;
  const { rows } = await db.query(`select 1 from ${table} where role_name = $1`, [role]);
  return rows.length > 0;
}

/**
 * The roles of this kind granted before that still exist; a dropped one is forgotten. Every
 * migrate grants them again.
 */
export async function rememberedRoles(db: Queryable, kind: RoleKind = "runtime"): Promise<string[]> {
  const { table } = KINDS[kind];
  if (!(await tableExists(db, table))) return [];
  await db.query(`delete from ${table} r where not exists (select 1 from pg_roles p where p.rolname = r.role_name)`);
  const { rows } = await db.query<{ role_name: string }>(`select role_name from ${table} order by role_name`);
  return rows.map((row) => row.role_name);
}
