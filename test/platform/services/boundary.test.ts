// What a writer of the `services` table cannot make a host do: set an environment variable
// the host did not allow (a key holding '=' included), signal a process the reconciler did
// not start, reach another program of a multi-call binary, or share or redirect a log file.
// Real rows, a real reconciler, real processes: a refused row would leave a marker file if
// anything of it ran, and none exists afterwards.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, beforeEach, describe, it } from "node:test";
import { stopService } from "../../../src/platform/services/act.ts";
import type { Allowlist } from "../../../src/platform/services/allowlist.ts";
import { bootId, readMarker, readProcess } from "../../../src/platform/services/proc.ts";
import { reconcileHost, type ReconcileContext } from "../../../src/platform/services/reconcile.ts";
import { logFileFor } from "../../../src/platform/services/spawn.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { alive, fixture, freePort, killEverything, reconcileContext, removeTempDirs, row, tempLogDir, uniqueHost, waitFor } from "./fixtures/harness.ts";

const db = useTestDatabase();
const host = uniqueHost("bound");
const strangers: ChildProcess[] = [];

after(() => {
  killEverything([host]);
  for (const child of strangers.splice(0)) child.kill("SIGKILL");
  removeTempDirs();
});
beforeEach(async () => {
  killEverything([host]);
  await db.pool.query("delete from services");
});

const hostAllows = (entries: string[], env: string[] = []): Allowlist => ({ entries, env, source: "the test harness" });

async function insert(name: string, command: string, args: string[], options: { env?: Record<string, string>; port?: number } = {}): Promise<number> {
  const port = options.port ?? (await freePort());
  await db.pool.query(
    "insert into services (name, module_name, host, command, args, env, port) values ($1, 'agent', $2, $3, $4, $5, $6)",
    [name, host, command, args, JSON.stringify(options.env ?? {}), port],
  );
  return port;
}

const pass = async (ctx: ReconcileContext) => (await reconcileHost(ctx)).result;

async function passUntil(ctx: ReconcileContext, name: string, status: string) {
  return waitFor(`${name} to be ${status}`, async () => {
    await pass(ctx);
    const current = await row(db.pool, name);
    return current?.status === status ? current : null;
  });
}

/** A directory for marker files; `touch(name)` is a Node program that creates one. */
function markerDir() {
  const dir = path.join(tempLogDir(), "markers");
  fs.mkdirSync(dir);
  return {
    dir,
    file: (name: string) => path.join(dir, name),
    touch: (name: string) => ["-e", `require("fs").writeFileSync(${JSON.stringify(path.join(dir, name))}, ""); setTimeout(() => {}, 30000)`],
  };
}

const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const environOf = (pid: number) => fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");

/** Nothing refused may run: give anything spawned the time to write its marker, then look. */
async function assertNothingRan(dir: string): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(fs.readdirSync(dir), [], "no refused service ran");
}

describe("environment variables a row may set", () => {
  it("a key holding '=' cannot smuggle NODE_OPTIONS into the service", async () => {
    const markers = markerDir();
    const smuggled = `NODE_OPTIONS=--import=data:text/javascript,import{writeFileSync}from'fs';writeFileSync('${markers.file("smuggled")}','')//`;
    await insert("smuggle", process.execPath, [fixture], { env: { [smuggled]: "1" } });
    const ctx = reconcileContext(db.pool, host, { allowlist: hostAllows([process.execPath], ["LOG_LEVEL"]) });
    const result = await pass(ctx);
    assert.deepEqual(result.failed.map((failure) => failure.name), ["smuggle"]);
    const refused = await row(db.pool, "smuggle");
    assert.equal(refused?.status, "failed");
    assert.equal(refused?.pid, null);
    assert.match(refused?.last_error ?? "", /^not allowed to run service smuggle: env key "NODE_OPTIONS=--import=data:.*" is not a valid variable name/);
    await assertNothingRan(markers.dir);
  });

  it("only the keys the host allows: any other refuses the row, naming the key and the setting; the reconciler's own variables still reach the service", async () => {
    const markers = markerDir();
    await insert("openssl", process.execPath, markers.touch("openssl"), { env: { LOG_LEVEL: "debug", OPENSSL_CONF: "/tmp/evil.cnf" } });
    await insert("home", process.execPath, markers.touch("home"), { env: { HOME: markers.dir } });
    await insert("git", process.execPath, markers.touch("git"), { env: { GIT_SSH_COMMAND: "touch /tmp/x", GIT_CONFIG_GLOBAL: "/tmp/x" } });
    const port = await insert("good", process.execPath, [fixture], { env: { LOG_LEVEL: "debug", MYAPP_MODE: "fast" } });
    const ctx = reconcileContext(db.pool, host, { allowlist: hostAllows([process.execPath], ["LOG_LEVEL", "MYAPP_*"]) });
    const first = await pass(ctx);
    assert.deepEqual(first.failed.map((failure) => failure.name).sort(), ["git", "home", "openssl"]);
    const openssl = await row(db.pool, "openssl");
    assert.equal(openssl?.status, "failed");
    assert.match(openssl?.last_error ?? "", /env key "OPENSSL_CONF" is not allowed on this host/);
    assert.match(openssl?.last_error ?? "", /add OPENSSL_CONF to SCHEDULER_SERVICES_ALLOWED_ENV .*or remove it from the service's env/);
    assert.match((await row(db.pool, "home"))?.last_error ?? "", /env key "HOME" is not allowed on this host/);
    assert.match((await row(db.pool, "git"))?.last_error ?? "", /env keys "GIT_SSH_COMMAND", "GIT_CONFIG_GLOBAL" are not allowed on this host/);

    const good = await passUntil(ctx, "good", "running");
    const environ = environOf(good.pid!);
    for (const entry of ["LOG_LEVEL=debug", "MYAPP_MODE=fast", `PORT=${port}`, "SYSTEMPROMPT_SERVICE=good", `SYSTEMPROMPT_SERVICE_INSTANCE=${good.instance_id}`, `SYSTEMPROMPT_SERVICE_HOST=${host}`]) {
      assert.ok(environ.includes(entry), entry);
    }
    if (process.env.HOME) assert.ok(environ.includes(`HOME=${process.env.HOME}`), "HOME is the node's own");
    await assertNothingRan(markers.dir);
  });
});

describe("signals only reach processes the reconciler started", () => {
  /** A process the test starts itself (no marker of the reconciler), and a row that copies its identity. */
  async function impostor(name: string, options: { desired: "enabled" | "disabled"; status: string; env?: Record<string, string>; startedLongAgo?: boolean }) {
    const child = spawn("sleep", ["300"], { stdio: "ignore", detached: true, env: { PATH: process.env.PATH ?? "", ...options.env } });
    strangers.push(child);
    const pid = child.pid!;
    const info = await waitFor("the sleeper's /proc entry", () => readProcess(pid));
    await insert(name, process.execPath, [fixture]);
    await db.pool.query(
      `update services set desired_status = $2, status = $3, pid = $4, process_start_ticks = $5, boot_id = $6, instance_id = $7,
              status_changed_at = now() - ($8 || ' seconds')::interval
       where name = $1`,
      [name, options.desired, options.status, pid, info.startTicks, bootId(), crypto.randomUUID(), options.startedLongAgo ? "3600" : "0"],
    );
    return pid;
  }

  it("a row copying another process's pid, start time and boot gets nothing signalled, and is marked orphaned", async () => {
    const disabled = await impostor("disabled", { desired: "disabled", status: "running" });
    // enabled and "starting" for an hour: a start time-out, which would stop it
    const timedOut = await impostor("timed-out", { desired: "enabled", status: "starting", startedLongAgo: true });
    // a copied marker of another instance proves nothing either
    const copied = await impostor("copied", { desired: "disabled", status: "running", env: { SYSTEMPROMPT_SERVICE: "copied", SYSTEMPROMPT_SERVICE_INSTANCE: crypto.randomUUID() } });
    const ctx = reconcileContext(db.pool, host);
    for (let i = 0; i < 3; i += 1) await pass(ctx);
    for (const [name, pid] of [["disabled", disabled], ["timed-out", timedOut], ["copied", copied]] as const) {
      assert.ok(alive(pid), `${name}: the sleeper was not signalled`);
      const current = await row(db.pool, name);
      assert.equal(current?.status, "orphaned", name);
      assert.equal(current?.pid, pid, `${name}: the row keeps what it claims, for a person to see`);
      assert.match(current?.last_error ?? "", new RegExp(`pid ${pid} \\(sleep\\) .*does not carry this service's instance marker`), name);
      assert.match(current?.last_error ?? "", /nothing was signalled/, name);
    }

    // services stop (the CLI) and the shutdown policy "stop" refuse it as well
    const claimed = (await row(db.pool, "disabled"))!;
    const outcome = await stopService(ctx, claimed, { force: true });
    assert.ok(outcome.status === "failed", "not stopped");
    assert.match(outcome.error, /does not carry this service's instance marker.*nothing was signalled/);
    await reconcileHost(ctx, { stopAll: true });
    for (const pid of [disabled, timedOut, copied]) assert.ok(alive(pid), `pid ${pid} survived services stop and the shutdown stop`);
  });

  it("its own service carries the marker and is stopped as before", async () => {
    const ctx = reconcileContext(db.pool, host);
    await insert("web", process.execPath, [fixture]);
    const running = await passUntil(ctx, "web", "running");
    assert.deepEqual(readMarker(running.pid!), { service: "web", instance: running.instance_id });
    await db.pool.query("update services set desired_status = 'disabled' where name = 'web'");
    assert.equal((await pass(ctx)).stopped, 1);
    await waitFor("the service to exit", () => !alive(running.pid!));
  });
});

describe("multi-call binaries", () => {
  /** `dir/ls` and `dir/sh`: two names of one program (Node here), as a busybox image has them. */
  function twoNames(): string {
    const dir = path.join(tempLogDir(), "bin");
    fs.mkdirSync(dir);
    fs.symlinkSync(process.execPath, path.join(dir, "ls"));
    fs.symlinkSync(process.execPath, path.join(dir, "sh"));
    return dir;
  }

  it("argv[0] is the allowed path, not the name the row gives the same file", async () => {
    const dir = twoNames();
    const logDir = tempLogDir();
    const ctx = reconcileContext(db.pool, host, { logDir, allowlist: hostAllows([`${dir}/ls`]) });
    await insert("argv", `${dir}/sh`, [fixture]);
    await passUntil(ctx, "argv", "running");
    assert.match(fs.readFileSync(logFileFor(logDir, "argv"), "utf8"), new RegExp(`argv0 ${literally(dir)}/ls\n`), "the program sees the name the host allowed");
  });

  it("a file allowed under several names, or named busybox or toybox, is refused unless listed by its real path", async () => {
    const dir = twoNames();
    const markers = markerDir();
    const box = path.join(fs.realpathSync(tempLogDir()), "box");
    fs.mkdirSync(box);
    fs.writeFileSync(path.join(box, "busybox"), `#!/bin/sh\ntouch ${markers.file("$(basename $0)")}\nexec sleep 30\n`, { mode: 0o755 });
    fs.symlinkSync(path.join(box, "busybox"), path.join(box, "cat"));
    await insert("several", `${dir}/ls`, markers.touch("several"));
    await insert("busybox", `${box}/cat`, []);
    const ctx = reconcileContext(db.pool, host, { allowlist: hostAllows([`${dir}/ls`, `${dir}/sh`, `${box}/cat`]) });
    const result = await pass(ctx);
    assert.deepEqual(result.failed.map((failure) => failure.name).sort(), ["busybox", "several"]);
    const real = fs.realpathSync(process.execPath);
    const several = await row(db.pool, "several");
    assert.equal(several?.status, "failed");
    assert.match(several?.last_error ?? "", new RegExp(`${literally(`${dir}/ls, ${dir}/sh`)} .*resolve to ${literally(real)}.*multi-call`));
    assert.match(several?.last_error ?? "", new RegExp(`fix: .*list ${literally(real)} itself`));
    const busybox = await row(db.pool, "busybox");
    assert.match(busybox?.last_error ?? "", new RegExp(`${literally(box)}/busybox .*multi-call binary`));
    await assertNothingRan(markers.dir);

    // listed by its real path, the host allows everything it can run
    await db.pool.query("update services set args = '{--any}' where name = 'busybox'"); // a changed row is checked again
    const allowed = reconcileContext(db.pool, host, { allowlist: hostAllows([`${box}/cat`, `${box}/busybox`]) });
    await pass(allowed);
    await waitFor("the multi-call program to run", () => fs.readdirSync(markers.dir).length > 0);
  });
});

describe("service names and log files", () => {
  it("a name the CLI refuses is refused on the host: 'a/b' and 'a_b' do not share a log file", async () => {
    const logDir = tempLogDir();
    const ctx = reconcileContext(db.pool, host, { logDir });
    await insert("a/b", process.execPath, [fixture]);
    await insert("a_b", process.execPath, [fixture]);
    await passUntil(ctx, "a_b", "running");
    const slash = await row(db.pool, "a/b");
    assert.equal(slash?.status, "failed");
    assert.equal(slash?.pid, null);
    assert.match(slash?.last_error ?? "", /^not allowed to run service a\/b: the service name "a\/b" is not valid/);
    assert.deepEqual(fs.readdirSync(logDir), ["a_b.log"]);
  });

  it("a symbolic link or a FIFO planted at a log path is not followed, opened or written", async () => {
    const logDir = tempLogDir();
    const target = path.join(tempLogDir(), "target");
    fs.writeFileSync(target, "");
    fs.symlinkSync(target, logFileFor(logDir, "linked"));
    assert.equal(spawnSync("mkfifo", [logFileFor(logDir, "fifo")]).status, 0, "mkfifo");
    await insert("linked", process.execPath, [fixture]);
    await insert("fifo", process.execPath, [fixture]);
    const ctx = reconcileContext(db.pool, host, { logDir });
    const result = await pass(ctx);
    assert.deepEqual(result.failed.map((failure) => failure.name).sort(), ["fifo", "linked"]);
    const linked = await row(db.pool, "linked");
    assert.equal(linked?.pid, null);
    assert.match(linked?.last_error ?? "", /log file .*linked\.log .*is a symbolic link/);
    assert.match((await row(db.pool, "fifo"))?.last_error ?? "", /log file .*fifo\.log .*is not a regular file/);
    assert.equal(fs.readFileSync(target, "utf8"), "", "nothing was written through the link");
  });
});
