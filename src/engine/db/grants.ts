import fs from "node:fs";
import path from "node:path";
import pg from "pg";
import { SchedulerError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Queryable } from "./pool.ts";
import { projectRoot } from "./sql-file.ts";

// The runtime role's rights: the grant files (sql/grants/*.sql, one per pack) with the role
// put in as a quoted identifier. `migrate --runtime-role` applies them and remembers the role
// (scheduler.runtime_roles), so that every later migrate, e.g. after an upgrade, grants it the
// new objects too; `migrate --print-grants` prints them for a DBA (who re-applies them).

const PLACEHOLDER = /:"runtime_role"/g;

/** The role as a quoted SQL identifier; a name PostgreSQL could not hold is refused. */
export function quoteRole(role: string): string {
  if (role.length === 0 || role.includes("\0") || Buffer.byteLength(role) > 63) {
    throw new SchedulerError("bad_role_name", `'${role}' cannot be a PostgreSQL role name`, { hint: "give the name of an existing role (at most 63 bytes)", exitCode: 2 });
  }
  return pg.escapeIdentifier(role);
}

/** The grant SQL of these files for `role`, each file introduced by its name. */
export function grantsSql(files: readonly string[], role: string): string {
  const quoted = quoteRole(role);
  return files
    .map((file) => `-- ${path.relative(projectRoot, file)}\n${fs.readFileSync(file, "utf8").replace(PLACEHOLDER, () => quoted).trimEnd()}\n`)
    .join("\n");
}

/**
 * Grants `role` what a node needs, in one transaction on `client` (a connection of its own:
 * the caller holds the migration lock on it, as two GRANTs on one object at once can fail),
 * and remembers it. The role must exist: creating it (and its password) is the DBA's business.
 */
export async function grantRuntimeRole(client: Queryable, files: readonly string[], role: string, logger: Logger): Promise<void> {
  const sql = grantsSql(files, role);
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
      throw new SchedulerError("runtime_role_is_owner", `the runtime role '${role}' is the role running migrate; it owns the schema already`, { hint: "connect as the owner (migration) role and name the role the nodes connect as", exitCode: 2 });
    }
    if (found.superuser) logger.warn({ role }, "the runtime role is a superuser: grants cannot limit it");
    await client.query("begin");
    await client.query(sql);
    await client.query(
      `insert into scheduler.runtime_roles (role_name, granted_by) values ($1, current_user)
       on conflict (role_name) do update set granted_at = now(), granted_by = current_user`,
      [role],
    );
    await client.query("commit");
    logger.info({ role }, "granted the runtime role what a node needs");
  } catch (error) {
    await client.query("rollback").catch(() => {});
    if (error instanceof SchedulerError) throw error;
    throw new SchedulerError("grant_failed", `granting role '${role}' failed: ${(error as Error).message}`, { hint: "run migrate --runtime-role as the role that owns the scheduler's schema (and the platform's tables)", cause: error });
  }
}

/**
 * The runtime roles granted before that still exist; a dropped one is forgotten. Every
 * migrate grants them again.
 */
export async function rememberedRoles(db: Queryable): Promise<string[]> {
  await db.query("delete from scheduler.runtime_roles r where not exists (select 1 from pg_roles p where p.rolname = r.role_name)");
  const { rows } = await db.query<{ role_name: string }>("select role_name from scheduler.runtime_roles order by role_name");
  return rows.map((row) => row.role_name);
}
