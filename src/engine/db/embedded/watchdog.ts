import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readOwner, releaseOwnership } from "./owner.ts";
import { runningServer } from "./postmaster.ts";

// The embedded server never outlives the process that owns it. Beside the server runs a tiny
// watchdog process (its own session, so neither Ctrl-C nor a closed terminal reaches it) that
// holds the read end of a pipe from the owner. When the owner exits in any way, SIGKILL and
// OOM kill included, the kernel closes the pipe; the watchdog then stops the server, unless
// the owner stopped it first or handed it over. Works wherever pipes and setsid do (Linux,
// macOS).

export interface Watchdog {
  /** The owner stopped the server itself: the watchdog may go. */
  dismiss(): void;
}

export function spawnWatchdog(options: { dataDir: string; pgCtl: string; postmasterPid: number; ids: { uid: number; gid: number } | undefined; logFile: string }): Watchdog {
  const log = fs.openSync(options.logFile, "a");
  const child = spawn(
    process.execPath,
    [fileURLToPath(import.meta.url), options.dataDir, options.pgCtl, String(process.pid), String(options.postmasterPid), String(options.ids?.uid ?? ""), String(options.ids?.gid ?? "")],
    { detached: true, stdio: ["pipe", "ignore", log] },
  );
  fs.closeSync(log);
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  child.stdin!.on("error", () => {});
  return { dismiss: () => child.stdin!.end() };
}

const postmasterPid = (dataDir: string) => runningServer(dataDir)?.pid ?? null;

function watch(): void {
  const [dataDir, pgCtl, ownerPidText, postmasterText, uid, gid] = process.argv.slice(2);
  const ownerPid = Number(ownerPidText);
  const expected = Number(postmasterText);
  const ids = uid && gid ? { uid: Number(uid), gid: Number(gid) } : {};
  const say = (message: string) => process.stderr.write(`${new Date().toISOString()} [systemprompt-scheduler watchdog ${process.pid}] ${message}\n`);
  let stopping = false;
  const ownerGone = () => {
    if (stopping) return;
    stopping = true;
    // Stopped by its owner, or handed over to another owner: nothing to do.
    if (readOwner(dataDir!)?.pid !== ownerPid || postmasterPid(dataDir!) !== expected) process.exit(0);
    say(`owner process ${ownerPid} exited without stopping the embedded PostgreSQL in ${dataDir}; stopping it`);
    execFile(pgCtl!, ["stop", "-w", "-m", "fast", "-D", dataDir!], ids, (error) => {
      if (error) say(`pg_ctl stop failed: ${error.message}`);
      releaseOwnership(dataDir!, ownerPid);
      process.exit(error ? 1 : 0);
    });
  };
  process.stdin.on("end", ownerGone);
  process.stdin.on("close", ownerGone);
  process.stdin.on("error", ownerGone);
  process.stdin.resume();
  // The server stopped some other way (db stop, pg_ctl by hand): the watchdog is done too.
  setInterval(() => {
    if (!stopping && postmasterPid(dataDir!) !== expected) process.exit(0);
  }, 2000);
  for (const signal of ["SIGINT", "SIGHUP"] as const) process.on(signal, () => {});
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) watch();
