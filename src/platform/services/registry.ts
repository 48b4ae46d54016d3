// Registering and changing services: what people (the CLI) and the platform write.
// The reconciler of each host reads these rows; a trigger wakes it on every change. Every
// change is recorded in the audit trail (scheduler.audit) by the statement that makes it.
import { readSql } from "../../engine/db/sql-file.ts";
import type { Queryable } from "../../engine/db/pool.ts";
import { SchedulerError } from "../../engine/errors.ts";
import { ENV_KEY, ENV_KEY_RULE, RESERVED_ENV_PREFIX, SERVICE_NAME, SERVICE_NAME_RULE } from "./names.ts";
import { MODULE_NAMES, type DesiredStatus, type ModuleName } from "./types.ts";

const sql = {
  insert: readSql(import.meta.url, "insert_service.sql"),
  setDesired: readSql(import.meta.url, "set_desired.sql"),
  list: readSql(import.meta.url, "list_services.sql"),
  deleteDisabled: readSql(import.meta.url, "delete_disabled.sql"),
};

export interface ServiceDefinition {
  name: string;
  module: ModuleName;
  host: string;
  command: string;
  args: string[];
  cwd: string | null;
  env: Record<string, string>;
  port: number;
  desired: DesiredStatus;
}

/** Checks a definition and names every problem with its fix. */
export function validateDefinition(definition: ServiceDefinition, protectedPorts: ReadonlySet<number>): void {
  const problems: string[] = [];
  if (!SERVICE_NAME.test(definition.name)) problems.push(`name '${definition.name}': use ${SERVICE_NAME_RULE}`);
  if (!MODULE_NAMES.includes(definition.module)) problems.push(`module '${definition.module}': must be one of ${MODULE_NAMES.join(", ")}`);
  if (!definition.command.trim()) problems.push("command: must not be empty");
  if (!Number.isInteger(definition.port) || definition.port < 1 || definition.port > 65535) problems.push(`port '${definition.port}': must be a whole number 1-65535`);
  else if (protectedPorts.has(definition.port)) problems.push(`port ${definition.port}: is protected (database, scheduler); pick another port`);
  for (const key of Object.keys(definition.env)) {
    if (!ENV_KEY.test(key)) problems.push(`env '${key}': not a valid variable name (${ENV_KEY_RULE})`);
    if (key.startsWith(RESERVED_ENV_PREFIX)) problems.push(`env '${key}': reserved for the reconciler's own markers`);
  }
  if (problems.length > 0) {
    throw new SchedulerError("invalid_service", `invalid service definition:\n  ${problems.join("\n  ")}`, { exitCode: 2 });
  }
}

/** Inserts a service, or with `replace` rewrites an existing one; false when it exists and `replace` is off. */
export async function saveService(db: Queryable, definition: ServiceDefinition, replace: boolean, actor: string): Promise<{ saved: boolean; inserted: boolean }> {
  try {
    const { rows } = await db.query<{ inserted: boolean }>(sql.insert, [
      definition.name, definition.module, definition.host, definition.command, definition.args,
      definition.cwd, JSON.stringify(definition.env), definition.port, definition.desired, replace, actor,
    ]);
    return { saved: rows.length > 0, inserted: rows[0]?.inserted === true };
  } catch (error) {
    const pgError = error as { code?: string; constraint?: string; message?: string; hint?: string };
    if (pgError.code === "23505") {
      const { rows } = await db.query<{ name: string }>("select name from services where host = $1 and port = $2 and name <> $3", [definition.host, definition.port, definition.name]);
      throw new SchedulerError("port_taken", `port ${definition.port} on host ${definition.host} is already used by service ${rows[0]?.name ?? "(another)"}`, { hint: "give this service another port", exitCode: 2 });
    }
    if (pgError.code === "P0001") throw new SchedulerError("service_busy", pgError.message ?? "service cannot be changed now", { hint: pgError.hint, exitCode: 2 });
    throw error;
  }
}

/** Who changes a service's desired state, and as what (services.enable, .disable, .stop, with what else to record). */
export interface DesiredChange {
  actor: string;
  action: string;
  detail?: Record<string, unknown>;
}

export async function setDesired(db: Queryable, name: string, desired: DesiredStatus, change: DesiredChange): Promise<{ host: string } | null> {
  const { rows } = await db.query<{ host: string }>(sql.setDesired, [name, desired, change.actor, change.action, JSON.stringify(change.detail ?? {})]);
  return rows[0] ?? null;
}

export async function getService(db: Queryable, name: string): Promise<{ name: string; host: string; desired_status: DesiredStatus } | null> {
  const { rows } = await db.query<{ name: string; host: string; desired_status: DesiredStatus }>("select name, host, desired_status from services where name = $1", [name]);
  return rows[0] ?? null;
}

export async function listServices(db: Queryable, host: string | null): Promise<Record<string, unknown>[]> {
  const { rows } = await db.query(sql.list, [host]);
  return rows;
}

export async function deleteDisabled(db: Queryable, host: string, verifiedNames: string[], trustRecorded: boolean): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(sql.deleteDisabled, [host, verifiedNames, trustRecorded]);
  return rows.map((row) => row.name);
}
