import { SchedulerError } from "../errors.ts";
import { latestGraphileMigration } from "../graphile/internals.ts";
import type { Logger } from "../log.ts";
import { appliedGraphileMigration, appliedMigrations, listMigrations, migrate } from "./migrate.ts";
import type { Pool, Queryable } from "./pool.ts";
import { appliedRepeatables, listRepeatables, staleRepeatables } from "./repeatables.ts";
import type { SchemaPlan } from "./schema-plan.ts";

// A node starts on a schema someone else migrated: in production the nodes connect as a
// runtime role with row rights only (sql/grants/), and the owner migrates. So a node first
// reads whether the schema is current, with plain SELECTs; when it is, it issues no DDL at all
// (no CREATE ... IF NOT EXISTS, no migration lock). Only when something is pending does it
// migrate, which works for an owner (one role for everything, or the embedded database) and
// fails for a runtime role: then it exits 2 with the command for the owner to run.

export interface SchemaStatus {
  /** Our migration files not applied yet, numbered and repeatable (changed since they last ran). */
  pending: string[];
  /** graphile-worker's latest applied migration, and the latest its package has (null: unknown). */
  graphile: { applied: number | null; latest: number | null };
  current: boolean;
}

/** Reads how far the database's schema is; SELECTs only. */
export async function schemaStatus(db: Queryable, plan: SchemaPlan): Promise<SchemaStatus> {
  const done = await appliedMigrations(db);
  const pending = [
    ...listMigrations(plan.dirs).filter((migration) => !done.has(migration.version)).map((migration) => migration.file),
    ...staleRepeatables(listRepeatables(plan.dirs), await appliedRepeatables(db)).map((repeatable) => repeatable.file),
  ];
  const graphile = { applied: await appliedGraphileMigration(db), latest: latestGraphileMigration() };
  const graphileCurrent = graphile.applied !== null && (graphile.latest === null || graphile.applied >= graphile.latest);
  return { pending, graphile, current: pending.length === 0 && graphileCurrent };
}

const INSUFFICIENT_PRIVILEGE = "42501";

/** True for PostgreSQL's insufficient_privilege, or an error wrapping it (e.g. migration_failed). */
export function isInsufficientPrivilege(error: unknown): boolean {
  return pgCode(error) === INSUFFICIENT_PRIVILEGE;
}

/** The PostgreSQL error code of an error or of the error it wraps. */
function pgCode(error: unknown): string | undefined {
  for (let current = error; current; current = (current as { cause?: unknown }).cause) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/**
 * Makes sure the schema is current before a node runs: nothing to do when it is (no DDL);
 * otherwise migrates, and turns a lack of rights into the command the owner must run.
 */
export async function ensureSchema(pool: Pool, logger: Logger, plan: SchemaPlan, actor: string): Promise<void> {
  let status: SchemaStatus | null = null;
  try {
    status = await schemaStatus(pool, plan);
  } catch (error) {
    // No USAGE on our schemas yet: the grants were never applied. Migrating will say so.
    if (!isInsufficientPrivilege(error)) throw error;
  }
  if (status?.current) {
    logger.debug("database schema is current; nothing to migrate");
    return;
  }
  try {
    await migrate(pool, logger, plan, { actor });
  } catch (error) {
    if (!isInsufficientPrivilege(error)) throw error;
    const { rows } = await pool.query<{ role: string }>("select current_user as role");
    const role = rows[0]?.role ?? "<this role>";
    throw new SchedulerError("schema_not_current", `the database schema is not current (${describe(status)}) and role '${role}' may not migrate it: ${(error as Error).message}`, {
      hint: `run as the owner (the platform's migration role): systemprompt-scheduler migrate --runtime-role ${shellWord(role)}`,
      exitCode: 2,
      cause: error,
    });
  }
}

function describe(status: SchemaStatus | null): string {
  if (!status) return "this role cannot read it: no rights on the scheduler's schemas";
  const parts: string[] = [];
  const { applied, latest } = status.graphile;
  if (applied === null) parts.push("graphile-worker's schema is missing");
  else if (latest !== null && applied < latest) parts.push(`graphile-worker's schema is at migration ${applied} of ${latest}`);
  const { pending } = status;
  if (pending.length > 3) parts.push(`${pending.length} migrations pending, ${pending[0]} to ${pending.at(-1)}`);
  else if (pending.length > 0) parts.push(`pending: ${pending.join(", ")}`);
  return parts.join("; ");
}

/** A role name as one shell word (quoted when it has anything but letters, digits, _ . -). */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_.-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
