import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { SchedulerError } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import { USER, type Binaries, type PostgresIds } from "./binaries.ts";

// The embedded superuser's password. A fixed one on 127.0.0.1 would make every local user,
// and every service the reconciler spawns, a superuser of the scheduler's database. So each
// data folder gets a random one when it is created, kept in a file inside the folder (which
// initdb makes 0700, and PostgreSQL ignores files it does not know), mode 0600: readable by the
// user the scheduler runs as (and root), no one else.

/** The password file inside the data folder. */
export const passwordFileOf = (dataDir: string) => path.join(dataDir, ".scheduler-password");

/** Written before the server is told the new password, renamed into place after. */
const pendingFileOf = (dataDir: string) => `${passwordFileOf(dataDir)}.pending`;

/** What folders made before random passwords have (until their next start upgrades them). */
export const LEGACY_PASSWORD = "postgres";

/** 32 url-safe characters (192 bits): no escaping in a connection string. */
export function newPassword(): string {
  return crypto.randomBytes(24).toString("base64url");
}

function readFile(file: string): string | null {
  try {
    const text = fs.readFileSync(file, "utf8").trim();
    return text || null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/** Writes the password with mode 0600, on disk (fsync) before the caller relies on it. */
export function writePasswordFile(file: string, password: string): void {
  fs.rmSync(file, { force: true }); // a mode is set only on creation
  const fd = fs.openSync(file, "wx", 0o600);
  try {
    fs.writeSync(fd, `${password}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The superuser's password of the cluster in dataDir: its password file's, or the old fixed
 * one for a folder made before (not started by this version yet; a running server left by an
 * older version keeps it until its next start).
 */
export function embeddedPassword(dataDir: string): string {
  return readFile(passwordFileOf(dataDir)) ?? LEGACY_PASSWORD;
}

/**
 * Gives a stopped cluster that still has the old fixed password a random one, before the
 * server is started (so it never listens with the old one again). Crash-safe: the new password
 * is written first as pending, then set in single-user mode (no connection, no password
 * needed), then the file is renamed into place; an upgrade interrupted anywhere is finished by
 * the next start, with the same pending password. Nothing to do when the file exists.
 */
export async function upgradeLegacyPassword(dataDir: string, bin: Binaries, ids: PostgresIds, logger: Logger): Promise<void> {
  if (readFile(passwordFileOf(dataDir)) !== null) return;
  const pending = pendingFileOf(dataDir);
  let password = readFile(pending);
  if (password === null) {
    password = newPassword();
    writePasswordFile(pending, password);
  }
  await singleUser(bin, ids, dataDir, `alter role ${USER} password '${password}'`).catch((error: unknown) => {
    throw new SchedulerError("embedded_password_upgrade_failed", `could not give the embedded PostgreSQL in ${dataDir} a random password: ${(error as Error).message}`, {
      hint: `see ${dataDir}.log; the next start tries again (or set DATABASE_URL to use another server)`,
      cause: error,
    });
  });
  fs.renameSync(pending, passwordFileOf(dataDir));
  logger.info({ dataDir, file: passwordFileOf(dataDir) }, "the embedded PostgreSQL had the old fixed password; it now has a random one, kept in its data folder");
}

/** Runs one statement in single-user mode (the server must not be running); its text goes on stdin, never in argv. */
function singleUser(bin: Binaries, ids: PostgresIds, dataDir: string, statement: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin.postgres, ["--single", "-D", dataDir, "-c", "listen_addresses=", "-c", "log_statement=none", "postgres"], {
      ...(ids ?? {}),
      env: { ...process.env, LC_ALL: "C" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      // Single-user mode reports a failed statement and still exits 0.
      const failed = /^(ERROR|FATAL|PANIC):.*$/m.exec(output);
      if (code === 0 && !failed) resolve();
      else reject(new Error(failed?.[0] ?? `postgres --single exited with ${code}: ${output.trim().split("\n").slice(-3).join(" ")}`));
    });
    child.stdin.end(`${statement}\n`);
  });
}
