import crypto from "node:crypto";
import pg from "pg";
import { adminUrl } from "./db.ts";

// Real roles for the least-privilege tests. Roles are cluster-wide and test files run in
// parallel: every name carries a random suffix, and `drop()` removes what it made (its
// databases first, so the roles own nothing when they go).

export interface TestRoles {
  /** role name -> password */
  names: Record<string, string>;
  /** A connection string for `role` to `database`. */
  url(role: string, database: string): string;
  /** A database owned by `owner`, created by the superuser. */
  createDatabase(owner: string): Promise<string>;
  /** Runs SQL as the superuser on `database` (the server's default when omitted). */
  admin(sql: string, values?: unknown[], database?: string): Promise<pg.QueryResult>;
  drop(): Promise<void>;
}

function urlFor(role: string, password: string, database: string): string {
  const url = new URL(adminUrl());
  url.username = role;
  url.password = password;
  url.pathname = `/${database}`;
  return url.toString();
}

function adminUrlFor(database: string | undefined): string {
  const url = new URL(adminUrl());
  if (database) url.pathname = `/${database}`;
  return url.toString();
}

/** Creates login roles `<prefix>_<label>_<suffix>` for each label; returns them by label. */
export async function createTestRoles(labels: readonly string[]): Promise<TestRoles & { role(label: string): string }> {
  const suffix = crypto.randomBytes(4).toString("hex");
  const byLabel = new Map(labels.map((label) => [label, `sps_${label}_${suffix}`]));
  const names: Record<string, string> = {};
  const databases: string[] = [];
  const admin = async (sql: string, values?: unknown[], database?: string) => {
    const client = new pg.Client({ connectionString: adminUrlFor(database) });
    await client.connect();
    try {
      return await client.query(sql, values);
    } finally {
      await client.end();
    }
  };
  for (const role of byLabel.values()) {
    const password = crypto.randomBytes(12).toString("hex");
    names[role] = password;
    await admin(`create role ${pg.escapeIdentifier(role)} login password ${pg.escapeLiteral(password)}`);
  }
  return {
    names,
    role: (label) => byLabel.get(label) ?? (() => { throw new Error(`no test role '${label}'`); })(),
    url: (role, database) => urlFor(role, names[role] ?? "", database),
    async createDatabase(owner) {
      const name = `sps_roles_${Date.now().toString(36)}_${crypto.randomBytes(3).toString("hex")}`;
      await admin(`create database ${name} owner ${pg.escapeIdentifier(owner)}`);
      databases.push(name);
      return name;
    },
    admin,
    async drop() {
      for (const name of databases) await admin(`drop database if exists ${name} with (force)`).catch(() => {});
      for (const role of Object.keys(names)) await admin(`drop role if exists ${pg.escapeIdentifier(role)}`).catch(() => {});
    },
  };
}

/** The PostgreSQL error code `sql` fails with on `db` (null: it worked). */
export async function failureCode(db: pg.Pool | pg.Client, sql: string): Promise<string | null> {
  try {
    await db.query(sql);
    return null;
  } catch (error) {
    return (error as { code?: string }).code ?? "?";
  }
}

/**
 * Every right `role` holds in a database, as sorted lines: on schemas, relations, columns, functions,
 * and the row level security policies naming it. The role's own name is replaced by ROLE, so
 * two roles granted alike compare equal.
 */
export async function rightsOf(db: pg.Pool | pg.Client, role: string): Promise<string[]> {
  const { rows } = await db.query<{ line: string }>(
    `with r as (select oid from pg_roles where rolname = $1)
     select format('schema %s: %s', n.nspname, a.privilege_type) as line
     from pg_namespace n, aclexplode(n.nspacl) a, r where a.grantee = r.oid
     union all
     select format('%s %s: %s', case c.relkind when 'S' then 'sequence' when 'v' then 'view' else 'table' end, c.oid::regclass, a.privilege_type)
     from pg_class c, aclexplode(c.relacl) a, r where a.grantee = r.oid
     union all
     select format('column %s.%s: %s', c.oid::regclass, att.attname, a.privilege_type)
     from pg_attribute att join pg_class c on c.oid = att.attrelid, aclexplode(att.attacl) a, r where a.grantee = r.oid
     union all
     select format('function %s: %s', p.oid::regprocedure, a.privilege_type)
     from pg_proc p, aclexplode(p.proacl) a, r where a.grantee = r.oid
     union all
     select format('policy on %s: %s %s', p.polrelid::regclass, p.polcmd, pg_get_expr(p.polqual, p.polrelid))
     from pg_policy p, r where r.oid = any (p.polroles)
     union all
     select format('owns %s', c.oid::regclass) from pg_class c, r where c.relowner = r.oid
     union all
     select format('database: %s', a.privilege_type) from pg_database d, aclexplode(d.datacl) a, r where d.datname = current_database() and a.grantee = r.oid
     order by 1`,
    [role],
  );
  return rows.map((row) => row.line);
}
