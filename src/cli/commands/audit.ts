import { listAudit } from "../../engine/audit/trail.ts";
import { limitOption, type Command } from "../command.ts";
import { renderTable, toJson } from "../table.ts";

/** A row's detail as `key=value` pairs, for a person. */
function describeDetail(detail: Record<string, unknown>): string {
  return Object.entries(detail)
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === "object" ? JSON.stringify(value) : String(value)}`)
    .join(" ");
}

export const auditCommand: Command = {
  name: "audit",
  readsOnly: true,
  summary: "who changed what by hand (runs, pauses, bans, services, migrations), newest first",
  usage: `systemprompt-scheduler audit [TARGET] [--limit N] [--json]

The audit trail: one row per change made by hand (run, pause, resume, ban, unban, services
add, enable, disable and stop, and migrate when it changed something), with who asked
(ACTOR: "OS user@host" for the CLI, "dashboard on NODE (ADDRESS)", an application's name) and
the database role it connected as (ROLE). TARGET is a job, an IP address, a service or a
database: only its rows. Kept as long as the run history (SCHEDULER_HISTORY_RETENTION_DAYS).

--limit N  how many rows (default 20, at most 10000)
--json     the rows as JSON (with detail, client_addr and application_name)`,
  options: { limit: { type: "string", short: "n" }, json: { type: "boolean" } },
  maxPositionals: 1,
  async run(ctx, args) {
    const limit = limitOption(args.values.limit, 20, 10_000);
    const target = args.positionals[0] ?? null;
    const rows = await listAudit(await ctx.pool(), { target, limit });
    if (args.values.json) {
      ctx.print(toJson(rows));
      return 0;
    }
    if (rows.length === 0) {
      ctx.print(target === null ? "the audit trail is empty" : `nothing recorded for '${target}'`);
      return 0;
    }
    ctx.print(
      renderTable(
        rows.map((row) => ({ ...row, details: describeDetail(row.detail) })),
        [
          { key: "at", header: "AT" },
          { key: "actor", header: "ACTOR" },
          { key: "db_role", header: "ROLE" },
          { key: "action", header: "ACTION" },
          { key: "target", header: "TARGET" },
          { key: "details", header: "DETAIL" },
        ],
      ),
    );
    return 0;
  },
};
