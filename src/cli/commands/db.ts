import { spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { resolveDatabase } from "../../engine/db/connect.ts";
import { clusterExists, connectionStringFor, runningServer, stopServer } from "../../engine/db/embedded/index.ts";
import { forgetDeadOwner, liveOwner } from "../../engine/db/embedded/owner.ts";
import { SchedulerError } from "../../engine/errors.ts";
import type { CliContext, Command } from "../command.ts";

// The embedded database, for a person: its URL, a psql on it, and stopping one left behind.

function embeddedDataDir(ctx: CliContext, what: string): string {
  if (ctx.config.DATABASE_URL) {
    throw new SchedulerError("not_embedded", `${what} is for the embedded PostgreSQL, but DATABASE_URL is set`, { hint: "unset DATABASE_URL to use the embedded one", exitCode: 2 });
  }
  return path.resolve(ctx.config.SCHEDULER_DATA_DIR);
}

const url: Command = {
  name: "url",
  summary: "print the database's connection string (with its password)",
  usage: `systemprompt-scheduler db url

Prints DATABASE_URL when it is set; otherwise the embedded PostgreSQL's connection string, with
the random password kept in SCHEDULER_DATA_DIR/.scheduler-password, on the port of the server
running there (or the one it will start on). Exit 2 before the folder was ever created.`,
  async run(ctx) {
    if (ctx.config.DATABASE_URL) {
      ctx.print(ctx.config.DATABASE_URL);
      return 0;
    }
    const dataDir = embeddedDataDir(ctx, "db url");
    if (!clusterExists(dataDir)) {
      throw new SchedulerError("no_embedded_cluster", `there is no embedded PostgreSQL in ${dataDir} yet, so it has no password`, {
        hint: "start it once (npm start, or any command such as systemprompt-scheduler status creates it), then run db url again",
        exitCode: 2,
      });
    }
    const server = runningServer(dataDir);
    ctx.print(connectionStringFor(dataDir, server?.port ?? ctx.config.SCHEDULER_EMBEDDED_PORT));
    if (!server) console.error(`(no server runs in ${dataDir} now: \`npm start\` or any command starts it)`);
    return 0;
  },
};

function passwordInEnvironment(connectionString: string): { url: string; env: Record<string, string> } {
  const url = new URL(connectionString);
  const password = decodeURIComponent(url.password);
  url.password = "";
  return { url: url.toString(), env: { PGPASSWORD: password } };
}

const psql: Command = {
  name: "psql",
  summary: "open psql on the database (the embedded one is started for the session if need be)",
  usage: `systemprompt-scheduler db psql [-- PSQL-ARGS...]

Runs psql, which must be installed (Debian: postgresql-client), on DATABASE_URL or the embedded
PostgreSQL; arguments after -- go to psql, e.g. db psql -- -c 'select * from scheduled_jobs'.`,
  maxPositionals: Infinity,
  async run(ctx, args) {
    if (spawnSync("psql", ["--version"], { stdio: "ignore" }).error) {
      throw new SchedulerError("no_psql", "psql is not installed on this machine", { hint: "install it (Debian: apt-get install postgresql-client), or connect another client to `systemprompt-scheduler db url`", exitCode: 2 });
    }
    const database = await resolveDatabase(ctx.config, ctx.logger);
    try {
      // The embedded server's password goes in psql's environment, not in its arguments (which
      // every local user can read in the process list).
      const { url, env } = database.embedded ? passwordInEnvironment(database.connectionString) : { url: database.connectionString, env: {} };
      const child = spawn("psql", [url, ...args.positionals], { stdio: "inherit", env: { ...process.env, ...env } });
      // psql handles Ctrl-C itself (it cancels the query); this process must not die of it.
      const ignore = () => {};
      process.on("SIGINT", ignore);
      const code = await new Promise<number>((resolve) => child.on("exit", (exit, signal) => resolve(exit ?? (signal ? 128 : 1))));
      process.off("SIGINT", ignore);
      return code;
    } finally {
      await database.release();
    }
  },
};

const stop: Command = {
  name: "stop",
  summary: "stop an embedded PostgreSQL left running (not one a live node owns)",
  usage: `systemprompt-scheduler db stop

Stops the embedded PostgreSQL of SCHEDULER_DATA_DIR when no live node owns it (a node stops its
own when it stops, and a watchdog stops it if the node is killed). Exit 2 if a node owns it.`,
  async run(ctx) {
    const dataDir = embeddedDataDir(ctx, "db stop");
    const server = runningServer(dataDir);
    if (!server) {
      ctx.print(`no embedded PostgreSQL runs in ${dataDir}`);
      return 0;
    }
    const owner = liveOwner(dataDir);
    if (owner?.role === "node") {
      throw new SchedulerError("embedded_in_use", `the embedded PostgreSQL in ${dataDir} belongs to a running node (pid ${owner.pid})`, { hint: `stop the node (kill -TERM ${owner.pid}); it stops its database last`, exitCode: 2 });
    }
    await stopServer(dataDir, ctx.logger);
    if (runningServer(dataDir)) throw new SchedulerError("embedded_stop_failed", `the embedded PostgreSQL in ${dataDir} (pid ${server.pid}) did not stop`, { hint: `see ${dataDir}.log` });
    forgetDeadOwner(dataDir);
    ctx.print(`stopped the embedded PostgreSQL in ${dataDir} (pid ${server.pid}, port ${server.port})`);
    return 0;
  },
};

export const dbCommand: Command = {
  name: "db",
  summary: "the database: url, psql, stop a leftover embedded server",
  usage: `systemprompt-scheduler db SUBCOMMAND

  url          print the connection string (with its password)
  psql         open psql on it
  stop         stop an embedded PostgreSQL that no live node owns`,
  subcommands: [url, psql, stop],
  async run(ctx) {
    ctx.print(dbCommand.usage);
    return 2;
  },
};
