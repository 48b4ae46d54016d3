import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Logger } from "../../log.ts";
import { SchedulerError } from "../../errors.ts";
import { binaries, postgresUserIds, reachable, run, usableBinaries, USER, type Binaries, type PostgresIds } from "./binaries.ts";
import { claimOwnership, liveOwner, pidAlive, readOwner, releaseOwnership, type Owner, type OwnerRole } from "./owner.ts";
import { embeddedPassword, newPassword, passwordFileOf, upgradeLegacyPassword, writePasswordFile } from "./password.ts";
import { runningServer } from "./postmaster.ts";
import { spawnWatchdog } from "./watchdog.ts";

export { runningServer };

// The embedded PostgreSQL of a data folder (SCHEDULER_DATA_DIR): created on first use, started
// in its own process group (Ctrl-C reaches the scheduler, which drains its jobs, not the
// database under it), owned by one process at a time (owner.ts), which stops it last, and
// watched so that it stops even when its owner is killed (watchdog.ts).

export interface EmbeddedPostgres {
  connectionString: string;
  port: number;
  /** True when this process owns the server (started or adopted it) and so stops it. */
  owned: boolean;
  stop(): Promise<void>;
}

/** The superuser's connection string for the cluster of dataDir, with its password (password.ts). */
export function connectionStringFor(dataDir: string, port: number): string {
  return `postgres://${USER}:${encodeURIComponent(embeddedPassword(dataDir))}@127.0.0.1:${port}/postgres`;
}

/** Whether dataDir holds a cluster (made by initialise). */
export const clusterExists = (dataDir: string) => fs.existsSync(path.join(dataDir, "PG_VERSION"));

/**
 * Creates the cluster (password authentication for every connection, a random superuser
 * password kept in the folder, UTF-8, owned by the postgres user when we are root) in a folder
 * beside the data folder, then renames it into place: a start interrupted here leaves no
 * half-made data folder behind, nor one without its password file.
 */
async function initialise(dataDir: string, bin: Binaries, ids: PostgresIds, logger: Logger): Promise<void> {
  if (fs.existsSync(dataDir)) {
    if (fs.readdirSync(dataDir).length > 0) {
      throw new SchedulerError("embedded_data_dir", `${dataDir} is not empty but holds no PostgreSQL cluster (no PG_VERSION)`, {
        hint: "move it away or remove it (a leftover of an interrupted start of an older version), or set SCHEDULER_DATA_DIR elsewhere",
        exitCode: 2,
      });
    }
    fs.rmdirSync(dataDir);
  }
  fs.mkdirSync(path.dirname(dataDir), { recursive: true });
  logger.info({ dataDir }, "creating the embedded PostgreSQL cluster");
  const staging = `${dataDir}.initdb-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { mode: 0o700 });
  const passwordFile = path.join(os.tmpdir(), `sps-pgpass-${process.pid}-${Date.now()}`);
  try {
    if (ids) {
      fs.chownSync(staging, ids.uid, ids.gid);
      if (!(await reachable(staging, ids))) {
        throw new SchedulerError("embedded_data_dir", `the postgres user cannot reach ${dataDir} (a parent folder is closed to other users)`, {
          hint: "set SCHEDULER_DATA_DIR to a folder every parent of which other users may enter, e.g. /var/lib/systemprompt-scheduler, or set DATABASE_URL",
          exitCode: 2,
        });
      }
    }
    const password = newPassword();
    writePasswordFile(passwordFile, password);
    if (ids) fs.chownSync(passwordFile, ids.uid, ids.gid);
    await run(bin.initdb, [`--pgdata=${staging}`, "--auth=scram-sha-256", `--username=${USER}`, `--pwfile=${passwordFile}`, "--encoding=UTF8", "--locale=C"], {
      ...(ids ?? {}),
      env: { ...process.env, LC_ALL: "C" },
    }).catch((error: unknown) => {
      const stderr = (error as { stderr?: string }).stderr?.trim() ?? "";
      throw new SchedulerError("embedded_initdb_failed", `initdb of the embedded PostgreSQL in ${dataDir} failed: ${stderr || (error as Error).message}`, {
        hint: "check the disk and the folder's permissions, or set DATABASE_URL",
        cause: error,
      });
    });
    writePasswordFile(passwordFileOf(staging), password);
    fs.renameSync(staging, dataDir);
  } finally {
    fs.rmSync(passwordFile, { force: true });
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

/** Stops the server of dataDir with pg_ctl (fast: sessions are ended, nothing half-written). */
export async function stopServer(dataDir: string, logger: Logger): Promise<void> {
  const ids = await postgresUserIds();
  await pgCtlStop(await usableBinaries(await binaries(), ids), ids, dataDir, logger);
}

/** False when pg_ctl failed (logged). */
async function pgCtlStop(bin: Binaries, ids: PostgresIds, dataDir: string, logger: Logger): Promise<boolean> {
  return run(bin.pg_ctl, ["stop", "-w", "-m", "fast", "-D", dataDir], { ...(ids ?? {}) }).then(
    () => true,
    (error: unknown) => {
      logger.warn({ err: error }, "stopping the embedded PostgreSQL failed");
      return false;
    },
  );
}

async function serverStartedBy(owner: Owner, dataDir: string): Promise<{ port: number } | null> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && pidAlive(owner.pid)) {
    const server = runningServer(dataDir);
    if (server) return server;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return null;
}

function borrowed(dataDir: string, port: number): EmbeddedPostgres {
  return { connectionString: connectionStringFor(dataDir, port), port, owned: false, stop: async () => {} };
}

/**
 * The embedded PostgreSQL kept in dataDir, for a node (role "node") or a CLI command ("cli").
 * - Running with a live owner: a CLI command borrows it; a node refuses (one node per data
 *   folder; several nodes share a DATABASE_URL), unless the owner is a CLI command that
 *   started it for a moment, from which the node takes it over.
 * - Running with no live owner (its owner was killed before its watchdog could act): a node
 *   adopts it; a CLI command borrows it.
 * - Not running: started (created first if need be) and owned.
 * An owner stops the server when done, and a watchdog stops it if the owner dies first.
 */
export async function startEmbeddedPostgres(options: { dataDir: string; port: number; logger: Logger; role?: OwnerRole }): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(options.dataDir);
  const role = options.role ?? "cli";
  const { logger } = options;

  const existing = runningServer(dataDir);
  if (existing && role === "cli") {
    logger.debug({ dataDir, port: existing.port }, "using the running embedded PostgreSQL");
    return borrowed(dataDir, existing.port);
  }
  const other = claimOwnership(dataDir, role, { takeOver: role === "node" && liveOwner(dataDir)?.role === "cli" });
  if (other) {
    // A CLI command borrows the server (waiting for it while its owner starts it).
    const started = role === "cli" ? (existing ?? (await serverStartedBy(other, dataDir))) : null;
    if (started) return borrowed(dataDir, started.port);
    if (role === "cli") {
      throw new SchedulerError("embedded_busy", `the embedded PostgreSQL in ${dataDir} belongs to process ${other.pid} (a ${other.role}), which is starting or stopping it`, {
        hint: "try again in a moment",
      });
    }
    throw new SchedulerError("embedded_in_use", `the embedded PostgreSQL in ${dataDir} is owned by another node (pid ${other.pid}, since ${other.since})`, {
      hint: "run one node per embedded data folder: stop that node, or give this one its own SCHEDULER_DATA_DIR; several nodes share a database through DATABASE_URL",
      exitCode: 2,
    });
  }

  try {
    const ids = await postgresUserIds();
    const bin = await usableBinaries(await binaries(), ids);
    const logFile = `${dataDir}.log`;
    let server = existing;
    if (server) {
      logger.warn({ dataDir, port: server.port, pid: server.pid }, "adopting an embedded PostgreSQL left running by a process that is gone; it stops with this node");
      if (!fs.existsSync(passwordFileOf(dataDir))) logger.warn({ dataDir }, "the adopted embedded PostgreSQL still has the old fixed password; it gets a random one at its next start");
    } else {
      if (!clusterExists(dataDir)) await initialise(dataDir, bin, ids, logger);
      // A folder made by an older version still has the fixed password: replaced before it listens.
      await upgradeLegacyPassword(dataDir, bin, ids, logger);
      fs.closeSync(fs.openSync(logFile, "a"));
      if (ids) fs.chownSync(logFile, ids.uid, ids.gid);
      const serverOptions = `-p ${options.port} -c listen_addresses=127.0.0.1 -k ''`;
      try {
        await run(bin.pg_ctl, ["start", "-w", "-t", "60", "-D", dataDir, "-l", logFile, "-o", serverOptions], { ...(ids ?? {}), env: { ...process.env, LC_ALL: "C" } });
      } catch (error) {
        const tail = fs.readFileSync(logFile, "utf8").trim().split("\n").slice(-5).join("\n");
        throw new SchedulerError("embedded_start_failed", `the embedded PostgreSQL in ${dataDir} did not start on port ${options.port}:\n${tail}`, {
          hint: `free port ${options.port} or set SCHEDULER_EMBEDDED_PORT; or set DATABASE_URL to use another server`,
          cause: error,
        });
      }
      server = runningServer(dataDir);
      if (!server) throw new SchedulerError("embedded_start_failed", `the embedded PostgreSQL in ${dataDir} stopped right after it started; see ${logFile}`);
      logger.info({ dataDir, port: server.port }, "embedded PostgreSQL started");
    }
    const watchdog = spawnWatchdog({ dataDir, pgCtl: bin.pg_ctl, postmasterPid: server.pid, ids, logFile });
    const port = server.port;
    return {
      connectionString: connectionStringFor(dataDir, port),
      port,
      owned: true,
      async stop() {
        // Handed over meanwhile (a node took it from this CLI command): not ours to stop.
        if (readOwner(dataDir)?.pid === process.pid) {
          if (await pgCtlStop(bin, ids, dataDir, logger)) logger.info({ dataDir }, "embedded PostgreSQL stopped");
          releaseOwnership(dataDir);
        }
        watchdog.dismiss();
      },
    };
  } catch (error) {
    releaseOwnership(dataDir);
    throw error;
  }
}
