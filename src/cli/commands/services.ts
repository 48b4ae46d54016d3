import crypto from "node:crypto";
import { cliActor } from "../../engine/audit/actor.ts";
import type { Queryable } from "../../engine/db/pool.ts";
import { isInsufficientPrivilege } from "../../engine/db/readiness.ts";
import { errorMessage, SchedulerError } from "../../engine/errors.ts";
import { stopService } from "../../platform/services/act.ts";
import { ALLOWLIST_VARIABLE, checkService, hostAllowlist, NOTHING_ALLOWED } from "../../platform/services/allowlist.ts";
import { ENV_ALLOWLIST_VARIABLE } from "../../platform/services/env-allowlist.ts";
import { splitCommandLine } from "../../platform/services/command-line.ts";
import { RESULT_CHANNEL, REQUEST_CHANNEL } from "../../platform/services/notify.ts";
import { deleteDisabled, getService, listServices, saveService, setDesired, validateDefinition } from "../../platform/services/registry.ts";
import { assertRunnableHere } from "../../platform/services/program.ts";
import { planHost, type ReconcileContext } from "../../platform/services/reconcile.ts";
import { protectedPortSet, resolveLogDir, resolvePolicy } from "../../platform/services/settings.ts";
import { listHostServices, lockHost, unlockHost } from "../../platform/services/store.ts";
import { MODULE_NAMES, type ModuleName, type PassResult } from "../../platform/services/types.ts";
import type { CliContext, Command, ParsedArgs } from "../command.ts";
import { renderTable, toJson } from "../table.ts";

const usageError = (message: string, hint?: string) => new SchedulerError("usage", message, { hint, exitCode: 2 });

function thisHost(ctx: CliContext, args: ParsedArgs): string {
  return typeof args.values.host === "string" && args.values.host ? args.values.host : ctx.config.SCHEDULER_HOST;
}

function protectedPorts(ctx: CliContext): Set<number> {
  const ports = protectedPortSet(ctx.config.SCHEDULER_PROTECTED_PORTS, ctx.config.DATABASE_URL);
  if (!ctx.config.DATABASE_URL) ports.add(ctx.config.SCHEDULER_EMBEDDED_PORT); // the embedded database's port
  return ports;
}

function cliContext(ctx: CliContext, pool: ReconcileContext["pool"], host: string, graceMs?: number): ReconcileContext {
  const grace = graceMs ?? ctx.config.SCHEDULER_SERVICES_STOP_GRACE_MS;
  return {
    pool, host, logger: ctx.logger, policy: resolvePolicy({ stopGraceMs: grace }), protectedPorts: protectedPorts(ctx),
    logDir: resolveLogDir(ctx.config.SCHEDULER_SERVICES_LOG_DIR), children: null,
    // the CLI stops and observes, it never starts a service: nothing is allowed to it
    allowlist: NOTHING_ALLOWED,
  };
}

function requireName(args: ParsedArgs, command: string): string {
  const name = args.positionals[0];
  if (!name) throw usageError(`services ${command} needs a service name`, `systemprompt-scheduler services ${command} NAME (see services list)`);
  return name;
}

function notFound(name: string): SchedulerError {
  return new SchedulerError("unknown_service", `no service named '${name}'`, { hint: "see systemprompt-scheduler services list", exitCode: 2 });
}

/**
 * Runs a change of what a host runs (register, enable, disable): the admin role's (or the
 * owner's) to make, never the nodes' runtime role's. A refusal says which role it needs.
 */
async function asAdmin<T>(db: Queryable, words: string, change: () => Promise<T>): Promise<T> {
  try {
    return await change();
  } catch (error) {
    if (!isInsufficientPrivilege(error)) throw error;
    const { rows } = await db.query<{ role: string }>("select current_user as role");
    throw new SchedulerError("needs_admin_role", `${words} needs the scheduler's admin role (granted by migrate --admin-role ROLE); connected as "${rows[0]?.role}"`, {
      hint: "run it with a DATABASE_URL of the admin role (or of the owner); the nodes' runtime role only records what it observes, so that a node taken over through SQL cannot change what a host runs",
      exitCode: 2,
      cause: error,
    });
  }
}

function seconds(value: unknown, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw usageError(`${flag} must be a number of seconds, got '${String(value)}'`);
  return n;
}

const list: Command = {
  name: "list",
  readsOnly: true,
  summary: "every service with its desired and observed state",
  usage: "systemprompt-scheduler services list [--host HOST] [--json]",
  options: { json: { type: "boolean" }, host: { type: "string" } },
  async run(ctx, args) {
    const host = typeof args.values.host === "string" ? args.values.host : null;
    const rows = await listServices(await ctx.pool(), host);
    if (args.values.json) {
      ctx.print(toJson(rows));
      return 0;
    }
    ctx.print(renderTable(rows.map((row) => ({ ...row, restarts: `${row.restart_count} (${row.consecutive_failures} failing)` })), [
      { key: "name", header: "NAME" }, { key: "module_name", header: "MODULE" }, { key: "host", header: "HOST" },
      { key: "port", header: "PORT" }, { key: "desired_status", header: "DESIRED" }, { key: "status", header: "STATUS" },
      { key: "pid", header: "PID" }, { key: "restarts", header: "RESTARTS" }, { key: "backoff_until", header: "BACK-OFF UNTIL" },
      { key: "last_error", header: "LAST ERROR" },
    ]));
    return 0;
  },
};

/**
 * Why the service would be refused on this host, for services add (which stores it all the
 * same: the allowlist is the host's, and may be extended there). Null when it would run.
 */
function allowlistWarning(ctx: CliContext, definition: { name: string; host: string; command: string; cwd: string | null; env: Record<string, string> }): string | null {
  const warn = (problem: string, fix: string) => `warning: service ${definition.name} will not start on host ${definition.host}: ${problem}\n  fix: ${fix}`;
  let verdict;
  try {
    verdict = checkService(definition, hostAllowlist(ctx.config));
  } catch (error) {
    return `warning: could not read this host's ${ALLOWLIST_VARIABLE} to check service ${definition.name}: ${errorMessage(error)}`;
  }
  return !verdict.allowed && "refusal" in verdict ? warn(verdict.refusal, verdict.fix) : null;
}

function parseEnv(value: unknown): Record<string, string> {
  const items = value === undefined ? [] : Array.isArray(value) ? value.map(String) : [String(value)];
  const env: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw usageError(`--env '${item}' is not KEY=VALUE`, "e.g. --env LOG_LEVEL=debug (repeat --env for more)");
    env[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return env;
}

const add: Command = {
  name: "add",
  summary: "register a service on a host (started by that host's reconciler)",
  usage: `systemprompt-scheduler services add NAME --command CMD --port N [options] [-- ARG...]

--command CMD   the program and its arguments, quoted as for a shell, e.g.
                --command "python3 -m http.server 8080" or --command 'node "my server.js"';
                it is run without a shell (no pipes, ;, &&, $VAR, globs: wrap those in a
                script). More arguments may follow --, taken as they are: -- --verbose
--port N        the TCP port it listens on (127.0.0.1 or ::1); it also gets PORT=N
--module M      agent (default), mcp or api
--host HOST     the host that runs it (default this node's SCHEDULER_HOST)
--cwd DIR       working directory
--env K=V       an environment variable (repeatable)
--disabled      register it without starting it
--replace       overwrite an existing service of that name (a failed one is retried)`,
  options: {
    command: { type: "string" }, port: { type: "string" }, module: { type: "string" }, host: { type: "string" },
    cwd: { type: "string" }, env: { type: "string", multiple: true }, disabled: { type: "boolean" }, replace: { type: "boolean" },
  },
  // NAME, then the program's arguments given after --.
  maxPositionals: Infinity,
  async run(ctx, args) {
    const [name, ...commandArgs] = args.positionals;
    if (!name) throw usageError("services add needs a service name", add.usage);
    if (typeof args.values.command !== "string") throw usageError("services add needs --command", add.usage);
    if (args.values.port === undefined) throw usageError("services add needs --port", add.usage);
    const [program = "", ...programArgs] = splitCommandLine(args.values.command);
    const definition = {
      name,
      module: (typeof args.values.module === "string" ? args.values.module : "agent") as ModuleName,
      host: thisHost(ctx, args),
      command: program,
      args: [...programArgs, ...commandArgs],
      cwd: typeof args.values.cwd === "string" ? args.values.cwd : null,
      env: parseEnv(args.values.env),
      port: Number(args.values.port),
      desired: args.values.disabled ? ("disabled" as const) : ("enabled" as const),
    };
    validateDefinition(definition, protectedPorts(ctx));
    // Another host's files cannot be seen from here; its reconciler reports a missing program.
    const checkedHere = definition.host === ctx.config.SCHEDULER_HOST;
    if (checkedHere) assertRunnableHere(definition);
    const pool = await ctx.pool();
    const saved = await asAdmin(pool, "services add", () => saveService(pool, definition, args.values.replace === true, cliActor()));
    if (!saved.saved) {
      throw new SchedulerError("service_exists", `a service named '${name}' already exists`, { hint: "add --replace to overwrite its definition, or pick another name", exitCode: 2 });
    }
    ctx.print(`service ${name} ${saved.inserted ? "added" : "replaced"} on host ${definition.host} (${definition.desired}, port ${definition.port}, module ${definition.module})`);
    if (!checkedHere) {
      const keys = Object.keys(definition.env);
      ctx.print(`  not checked here: that ${definition.command} exists on host ${definition.host}, and that its ${ALLOWLIST_VARIABLE} allows it${keys.length > 0 ? ` and its ${ENV_ALLOWLIST_VARIABLE} ${keys.join(", ")}` : ""}`);
    }
    const warning = checkedHere ? allowlistWarning(ctx, definition) : null;
    if (warning) ctx.print(warning);
    return 0;
  },
};

function desiredCommand(name: "enable" | "disable"): Command {
  const desired = name === "enable" ? "enabled" : "disabled";
  return {
    name,
    summary: name === "enable" ? "keep a service running" : "stop a service; its row is removed once its process is gone",
    usage: `systemprompt-scheduler services ${name} NAME`,
    maxPositionals: 1,
    async run(ctx, args) {
      const service = requireName(args, name);
      const pool = await ctx.pool();
      const row = await asAdmin(pool, `services ${name}`, () => setDesired(pool, service, desired, { actor: cliActor(), action: `services.${name}` }));
      if (!row) throw notFound(service);
      ctx.print(
        name === "enable"
          ? `service ${service} enabled; the reconciler of host ${row.host} starts it (at once, if a scheduler runs there)`
          : `service ${service} disabled; the reconciler of host ${row.host} stops it and then removes its row (add it again to run it later)`,
      );
      return 0;
    },
  };
}

const stop: Command = {
  name: "stop",
  summary: "stop a service of this host now (and disable it)",
  usage: `systemprompt-scheduler services stop NAME [--force] [--grace SECONDS] [--json]

Disables the service, then sends SIGTERM to its process group, waits the grace period
(default 10 s) and sends SIGKILL. --force sends SIGKILL at once. Only processes this
scheduler can prove it started are signalled. Run it on the service's host.`,
  options: { force: { type: "boolean" }, grace: { type: "string" }, json: { type: "boolean" } },
  maxPositionals: 1,
  async run(ctx, args) {
    const name = requireName(args, "stop");
    const pool = await ctx.pool();
    const host = ctx.config.SCHEDULER_HOST;
    const service = await getService(pool, name);
    if (!service) throw notFound(name);
    if (service.host !== host) {
      throw new SchedulerError("wrong_host", `service ${name} runs on host ${service.host}, not on this host (${host})`, {
        hint: `run this on ${service.host}, or use services disable ${name} and let its reconciler stop it`,
        exitCode: 2,
      });
    }
    const client = await pool.connect();
    try {
      if (!(await lockHost(client, host, 30_000))) throw new SchedulerError("host_busy", `the reconciler of host ${host} held its lock for 30 s`, { hint: "try again" });
      try {
        const graceMs = seconds(args.values.grace, "--grace", 10) * 1000;
        const force = args.values.force === true;
        await asAdmin(client, "services stop", () => setDesired(client, name, "disabled", { actor: cliActor(), action: "services.stop", detail: { force, grace_ms: graceMs } }));
        const ctxForStop = cliContext(ctx, pool, host, graceMs);
        const row = (await listHostServices(client, host)).find((candidate) => candidate.name === name);
        if (!row) throw notFound(name);
        const outcome = await stopService(ctxForStop, row, { force });
        if (args.values.json) ctx.print(toJson({ name, ...outcome }));
        else if (outcome.status === "done") ctx.print(`service ${name} stopped${outcome.note ? ` (${outcome.note})` : ""}; it is disabled, and its row is removed at the next pass`);
        else ctx.print(`service ${name} not stopped: ${outcome.error}`);
        return outcome.status === "done" ? 0 : 1;
      } finally {
        await unlockHost(client, host).catch(() => {});
      }
    } finally {
      client.release();
    }
  },
};

function printPass(ctx: CliContext, result: PassResult): void {
  ctx.print(`host ${result.host}: ${result.services} service(s); started ${result.started}, stopped ${result.stopped}, restarted ${result.restarted}, cleaned up ${result.cleanedUp}, failed ${result.failed.length}${result.skipped ? ` (skipped: ${result.skipped})` : ""}`);
  for (const failure of result.failed) ctx.print(`  ${failure.name} (${failure.action}): ${failure.error}`);
}

const reconcile: Command = {
  name: "reconcile",
  summary: "ask this host's scheduler to reconcile now and print what it did",
  usage: `systemprompt-scheduler services reconcile [--host HOST] [--timeout SECONDS] [--dry-run] [--json]

Sends NOTIFY scheduler_services to the scheduler of the host and waits (default 60 s) for the
result of the pass it runs. --dry-run runs no pass: it prints what a pass on this host would
do now (observation and decision only; nothing is started, stopped or written).`,
  options: { host: { type: "string" }, timeout: { type: "string" }, "dry-run": { type: "boolean" }, json: { type: "boolean" } },
  async run(ctx, args) {
    const pool = await ctx.pool();
    const host = thisHost(ctx, args);
    if (args.values["dry-run"]) {
      if (host !== ctx.config.SCHEDULER_HOST) throw usageError("--dry-run observes local processes: run it on the service's host, without --host");
      const plans = await planHost(cliContext(ctx, pool, host));
      const rows = plans.map((plan) => ({ name: plan.row.name, desired: plan.row.desired_status, runtime: plan.runtime, action: plan.action, reason: plan.reason }));
      ctx.print(args.values.json ? toJson(rows) : renderTable(rows, [
        { key: "name", header: "NAME" }, { key: "desired", header: "DESIRED" }, { key: "runtime", header: "RUNTIME" },
        { key: "action", header: "WOULD DO" }, { key: "reason", header: "WHY" },
      ]));
      return 0;
    }
    const timeoutMs = seconds(args.values.timeout, "--timeout", 60) * 1000;
    const requestId = crypto.randomUUID();
    const client = await pool.connect();
    try {
      const answer = new Promise<PassResult | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), timeoutMs);
        client.on("notification", (message) => {
          if (message.channel !== RESULT_CHANNEL || !message.payload) return;
          try {
            const reply = JSON.parse(message.payload) as { requestId?: string; result?: PassResult };
            if (reply.requestId === requestId && reply.result) {
              clearTimeout(timer);
              resolve(reply.result);
            }
          } catch {
            // someone else's malformed payload: not our answer
          }
        });
      });
      await client.query(`listen ${RESULT_CHANNEL}`);
      await client.query("select pg_notify($1, $2)", [REQUEST_CHANNEL, JSON.stringify({ host, requestId })]);
      const result = await answer;
      await client.query(`unlisten ${RESULT_CHANNEL}`).catch(() => {});
      if (!result) {
        throw new SchedulerError("no_reconciler", `no scheduler of host ${host} answered within ${timeoutMs / 1000} s`, {
          hint: "start one there (systemprompt-scheduler start), or see what a pass would do with services reconcile --dry-run",
          exitCode: 3,
        });
      }
      if (args.values.json) ctx.print(toJson(result));
      else printPass(ctx, result);
      return result.failed.length > 0 ? 1 : 0;
    } finally {
      client.removeAllListeners("notification");
      client.release();
    }
  },
};

const cleanup: Command = {
  name: "cleanup",
  summary: "remove rows of disabled services whose process is gone",
  usage: `systemprompt-scheduler services cleanup [--host HOST] [--json]

On this host the process table proves which disabled services have no process. For another
host (one whose scheduler is gone, say) only rows that record no live process are removed.`,
  options: { host: { type: "string" }, json: { type: "boolean" } },
  async run(ctx, args) {
    const pool = await ctx.pool();
    const host = thisHost(ctx, args);
    const local = host === ctx.config.SCHEDULER_HOST;
    const verified = local
      ? (await planHost(cliContext(ctx, pool, host))).filter((plan) => plan.tableAction === "cleanup-db").map((plan) => plan.row.name)
      : [];
    const removed = await deleteDisabled(pool, host, verified, !local);
    if (args.values.json) ctx.print(toJson({ host, removed }));
    else ctx.print(removed.length === 0 ? `no stale services on host ${host}` : `removed ${removed.length} stale service(s) on host ${host}: ${removed.join(", ")}`);
    return 0;
  },
};

export const servicesCommand: Command = {
  name: "services",
  summary: "services (agents, MCP servers) each host keeps running: list, add, enable, disable, stop, reconcile, cleanup",
  usage: `systemprompt-scheduler services SUBCOMMAND

  list [--json]                        every service, desired and observed state
  add NAME --command CMD --port N      register a service (see services add --help)
  enable NAME | disable NAME           keep it running | stop it and remove its row
  stop NAME [--force]                  stop it now, on this host (and disable it)
  reconcile [--dry-run]                reconcile this host now and print the result
  cleanup                              remove rows of disabled services without a process

Module names: ${MODULE_NAMES.join(", ")}. With separate database roles, add, enable, disable and
stop need the admin role (migrate --admin-role); the nodes' runtime role may not change them.`,
  subcommands: [list, add, desiredCommand("enable"), desiredCommand("disable"), stop, reconcile, cleanup],
  async run(ctx) {
    ctx.print(servicesCommand.usage);
    return 2;
  },
};
