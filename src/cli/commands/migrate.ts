import { cliActor } from "../../engine/audit/actor.ts";
import { adminGrantsSql, hasAdminGrants, migrate, runtimeGrantsSql } from "../../scheduler.ts";
import { isInsufficientPrivilege } from "../../engine/db/readiness.ts";
import { SchedulerError } from "../../engine/errors.ts";
import { usageError, type Command } from "../command.ts";

const usage = `systemprompt-scheduler migrate [--runtime-role ROLE] [--admin-role ROLE] | --print-grants ROLE [--admin-role ROLE]

Applies pending migrations (graphile-worker's, sql/engine and sql/platform) and exits. Safe to
run while nodes run, and from several places at once. With SCHEDULER_PLATFORM=false, only the
engine's schema (graphile_worker and scheduler) is applied. Run it as the owner (the platform's
migration role); on a platform database that existed first, it adds the jobs' indexes and
triggers to the platform's tables and says what it added.

  --runtime-role ROLE   also grant ROLE exactly what a node needs (row rights, no DDL); the
                        nodes then connect as ROLE. Idempotent; every later migrate grants
                        ROLE again (so an upgrade's new tables are covered).
  --admin-role ROLE     also grant ROLE what people change and nodes may not: registering
                        services, enabling and disabling them, changing what they run
                        (services add, enable, disable, stop). Another role than the runtime
                        role; granted again by every later migrate, like it.
  --print-grants ROLE   print the runtime role's grant SQL for ROLE (and, with --admin-role,
                        the admin role's) for a DBA to review and apply (again after every
                        upgrade); changes nothing and needs no database.`;

export const migrateCommand: Command = {
  name: "migrate",
  summary: "apply pending database migrations and grant the nodes' runtime role and the admin role, or print the grants",
  usage,
  options: { "runtime-role": { type: "string" }, "admin-role": { type: "string" }, "print-grants": { type: "string" } },
  async run(ctx, args) {
    const runtimeRole = args.values["runtime-role"] as string | undefined;
    const adminRole = args.values["admin-role"] as string | undefined;
    const printFor = args.values["print-grants"] as string | undefined;
    if (runtimeRole !== undefined && printFor !== undefined) throw usageError("--runtime-role and --print-grants do not go together", usage);
    const platform = ctx.config.SCHEDULER_PLATFORM;
    if (printFor !== undefined) {
      if (adminRole !== undefined && adminRole === printFor) throw usageError(`'${adminRole}' cannot be both the runtime role and the admin role: name two roles`, usage);
      const withAdmin = hasAdminGrants({ platform });
      if (adminRole !== undefined && !withAdmin) throw usageError("--admin-role: no admin role is needed here (the engine alone, SCHEDULER_PLATFORM=false, has only the runtime role)", usage);
      // One transaction: a DBA applying it gets all of it or none.
      ctx.print(`-- The rights a systemprompt-scheduler node needs, for role ${printFor}${adminRole === undefined ? "" : `, and those of the admin role ${adminRole}`}. Apply after\n-- \`migrate\`, as the owner of the scheduler's schema (or a superuser), e.g. psql -v ON_ERROR_STOP=1 -f this.sql\nbegin;\n`);
      ctx.print(runtimeGrantsSql(printFor, { platform }).trimEnd());
      if (adminRole !== undefined) ctx.print(`\n${adminGrantsSql(adminRole, { platform }).trimEnd()}`);
      else if (withAdmin) ctx.print("\n-- The admin role's rights (services add, enable, disable, stop): add --admin-role ROLE to print them.");
      ctx.print("\ncommit;");
      return 0;
    }
    const pool = await ctx.pool();
    const { applied, adopted, granted, grantedAdmin } = await migrate(pool, { logger: ctx.logger, platform, runtimeRole, adminRole, actor: cliActor() }).catch(async (error: unknown) => {
      // A grant that failed says so itself; a migration a runtime role may not run gets the hint.
      if (!isInsufficientPrivilege(error) || (error instanceof SchedulerError && error.code !== "migration_failed")) throw error;
      const { rows } = await pool.query<{ role: string }>("select current_user as role");
      throw new SchedulerError("not_owner", `role '${rows[0]?.role}' may not migrate this database: ${(error as Error).message}`, {
        hint: "run migrate as the owner of the scheduler's schema (the platform's migration role); nodes and other commands connect as the runtime role",
        cause: error,
      });
    });
    ctx.print(applied.length > 0 ? `applied: ${applied.join(", ")}` : "database schema is up to date");
    for (const report of adopted) ctx.print(`adopted ${report.table} (owner ${report.owner}): added ${report.added.join(", ")}`);
    if (granted.length > 0) ctx.print(`granted runtime role${granted.length > 1 ? "s" : ""}: ${granted.join(", ")}`);
    if (grantedAdmin.length > 0) ctx.print(`granted admin role${grantedAdmin.length > 1 ? "s" : ""}: ${grantedAdmin.join(", ")}`);
    return 0;
  },
};
