import { SchedulerError } from "../errors.ts";
import type { AdoptedTable } from "../pack.ts";
import type { Queryable } from "./pool.ts";

// A platform database that existed before the scheduler: its tables were created by the
// platform's own role, with columns of their own. Migrations create such a table only when it
// is missing and otherwise add what the jobs need (indexes, triggers); they never alter a
// column the platform made. Before migrating: the checks below. After: what was added.

/** An adopted table as it stands: who owns it and what it has. */
interface TableState {
  table: string;
  qualified: string;
  owner: string;
  mayExtend: boolean;
  columns: string[];
  indexes: string[];
  triggers: string[];
}

/** What migrate added to a table another role created. */
export interface AdoptionReport {
  table: string;
  owner: string;
  added: string[];
}

const STATE = `
select format('%I.%I', n.nspname, c.relname) as qualified, pg_get_userbyid(c.relowner) as owner,
       pg_has_role(current_user, c.relowner, 'USAGE') as may_extend,
       array(select a.attname::text from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum) as columns,
       array(select i.relname::text from pg_index x join pg_class i on i.oid = x.indexrelid where x.indrelid = c.oid order by 1) as indexes,
       array(select t.tgname::text from pg_trigger t where t.tgrelid = c.oid and not t.tgisinternal order by 1) as triggers
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.oid = to_regclass($1)`;

async function tableStates(db: Queryable, tables: readonly AdoptedTable[]): Promise<Map<string, TableState>> {
  const states = new Map<string, TableState>();
  for (const { table } of tables) {
    const { rows } = await db.query<{ qualified: string; owner: string; may_extend: boolean; columns: string[]; indexes: string[]; triggers: string[] }>(STATE, [table]);
    const row = rows[0];
    if (row) states.set(table, { table, qualified: row.qualified, owner: row.owner, mayExtend: row.may_extend, columns: row.columns, indexes: row.indexes, triggers: row.triggers });
  }
  return states;
}

/**
 * Checks the adopted tables that exist before anything is applied: each must have the columns
 * the packs read, and the role migrating must own it (CREATE INDEX and CREATE TRIGGER on it
 * need its owner). Returns their state, for the report afterwards.
 */
export async function checkAdoptedTables(db: Queryable, tables: readonly AdoptedTable[]): Promise<Map<string, TableState>> {
  const states = await tableStates(db, tables);
  const problems: string[] = [];
  const notOwned = new Map<string, string[]>();
  let missingColumns = false;
  for (const { table, columns } of tables) {
    const state = states.get(table);
    if (!state) continue;
    if (!state.mayExtend) notOwned.set(state.owner, [...(notOwned.get(state.owner) ?? []), state.qualified]);
    const missing = columns.filter((column) => !state.columns.includes(column));
    if (missing.length > 0) {
      missingColumns = true;
      problems.push(`table ${state.qualified} has no column ${missing.join(", ")}, which the scheduler's jobs read`);
    }
  }
  const { rows } = await db.query<{ me: string }>("select current_user as me");
  const me = rows[0]?.me ?? "?";
  for (const [owner, qualified] of notOwned) {
    problems.unshift(`${qualified.length === 1 ? "table" : "tables"} ${qualified.join(", ")} ${qualified.length === 1 ? "is" : "are"} owned by role '${owner}', which '${me}' (running migrate) is not, nor a member of: adding the scheduler's indexes and triggers needs the owner`);
  }
  const owners = [...notOwned.keys()];
  if (problems.length === 0) return states;
  const fixes = [
    ...(owners.length > 0 ? [`run migrate as ${owners.map((owner) => `'${owner}'`).join(" or ")} (the platform's owner), or make the migrating role a member: grant ${owners.join(", ")} to ${me}`] : []),
    ...(missingColumns ? ["add the missing columns in the platform's own migrations (the scheduler never alters the platform's columns)"] : []),
  ];
  throw new SchedulerError("cannot_adopt", `the platform's existing tables cannot be adopted:\n  ${problems.join("\n  ")}`, { hint: fixes.join("; "), exitCode: 2 });
}

/** What was added to each table that existed before (tables created just now are not listed). */
export async function adoptionReport(db: Queryable, tables: readonly AdoptedTable[], before: Map<string, TableState>): Promise<AdoptionReport[]> {
  const after = await tableStates(db, tables.filter(({ table }) => before.has(table)));
  const reports: AdoptionReport[] = [];
  for (const [table, old] of before) {
    const now = after.get(table);
    if (!now) continue;
    const added = [
      ...now.columns.filter((name) => !old.columns.includes(name)).map((name) => `column ${name}`),
      ...now.indexes.filter((name) => !old.indexes.includes(name)).map((name) => `index ${name}`),
      ...now.triggers.filter((name) => !old.triggers.includes(name)).map((name) => `trigger ${name}`),
    ];
    if (added.length > 0) reports.push({ table: now.qualified, owner: now.owner, added });
  }
  return reports;
}
