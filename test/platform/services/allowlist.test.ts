// The host's allowlist (SCHEDULER_SERVICES_ALLOWED_COMMANDS): parsing, the file rule, the
// resolution rules, and, against a real database and real processes, that a row naming a
// program the host does not allow is never executed: each refused row would create a marker
// file if it ran, and none exists afterwards.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, beforeEach, describe, it } from "node:test";
import { loadConfig } from "../../../src/config.ts";
import { SchedulerError } from "../../../src/engine/errors.ts";
import {
  allowlistFileProblem, checkService, hostAllowlist, NOTHING_ALLOWED, parseAllowlist, readAllowlistFile,
} from "../../../src/platform/services/allowlist.ts";
import { envKeyAllowed, parseEnvAllowlist } from "../../../src/platform/services/env-allowlist.ts";
import { startServiceReconciler } from "../../../src/platform/services/loop.ts";
import { planHost, reconcileHost, type ReconcileContext } from "../../../src/platform/services/reconcile.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { allowing, allowNode, fastPolicy, fixture, freePort, killEverything, reconcileContext, removeTempDirs, row, tempLogDir, uniqueHost, waitFor } from "./fixtures/harness.ts";

const db = useTestDatabase();
const host = uniqueHost("allow");
const sh = fs.realpathSync("/bin/sh");

after(() => {
  killEverything([host]);
  removeTempDirs();
});
beforeEach(async () => {
  killEverything([host]);
  await db.pool.query("delete from services");
});

/** tmp/allowed/dir/ with `node` (a symlink to Node, allowed as a file) and `innocent` (a symlink to /bin/sh). */
function allowedDir(): string {
  const dir = path.join(tempLogDir(), "allowed", "dir");
  fs.mkdirSync(dir, { recursive: true });
  fs.symlinkSync(process.execPath, path.join(dir, "node"));
  fs.symlinkSync("/bin/sh", path.join(dir, "innocent"));
  return dir;
}

/** `..` enough times to climb from `dir` to /. */
const toRoot = (dir: string) => "../".repeat(dir.split("/").filter(Boolean).length);

async function insert(name: string, port: number, command: string, args: string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<void> {
  await db.pool.query(
    "insert into services (name, module_name, host, command, args, cwd, env, port) values ($1, 'agent', $2, $3, $4, $5, $6, $7)",
    [name, host, command, args, options.cwd ?? null, JSON.stringify(options.env ?? {}), port],
  );
}

const pass = async (ctx: ReconcileContext) => (await reconcileHost(ctx)).result;

describe("parsing SCHEDULER_SERVICES_ALLOWED_COMMANDS", () => {
  it("takes absolute files and directories ending in /, trimmed", () => {
    assert.deepEqual(parseAllowlist(" /usr/bin/node , /opt/agents/bin/ "), { entries: ["/usr/bin/node", "/opt/agents/bin/"], env: [], problems: [] });
  });

  it("names every bad item: relative paths and empty items", () => {
    const { problems } = parseAllowlist("bin/node,,/ok,./x,");
    assert.equal(problems.length, 4);
    assert.match(problems[0]!, /item 1 'bin\/node' is not an absolute path: give e\.g\. \/usr\/bin\/node, or a directory ending in \//);
    assert.match(problems[1]!, /item 2 is empty/);
    assert.match(problems[2]!, /item 4 '\.\/x' is not an absolute path/);
    assert.match(problems[3]!, /item 5 is empty/);
  });

  it("in a file: one or more per line, # comments and blank lines ignored", () => {
    assert.deepEqual(parseAllowlist("# agents\n/usr/bin/node\n\n/opt/a/, /opt/b\n", { lines: true }).entries, ["/usr/bin/node", "/opt/a/", "/opt/b"]);
  });

  it("the configuration refuses bad values, naming the variable and the item", () => {
    assert.deepEqual(loadConfig({ SCHEDULER_SERVICES_ALLOWED_COMMANDS: "/usr/bin/node,/opt/agents/" }).SCHEDULER_SERVICES_ALLOWED_COMMANDS, ["/usr/bin/node", "/opt/agents/"]);
    assert.equal(loadConfig({}).SCHEDULER_SERVICES_ALLOWED_COMMANDS, undefined);
    assert.throws(() => loadConfig({ SCHEDULER_SERVICES_ALLOWED_COMMANDS: "node,/usr/bin/python3,", SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE: "allow.txt" }), (error: unknown) => {
      assert.ok(error instanceof SchedulerError);
      assert.equal(error.code, "invalid_config");
      assert.match(error.message, /SCHEDULER_SERVICES_ALLOWED_COMMANDS="node,\/usr\/bin\/python3,": item 1 'node' is not an absolute path/);
      assert.match(error.message, /SCHEDULER_SERVICES_ALLOWED_COMMANDS="node,\/usr\/bin\/python3,": item 3 is empty/);
      assert.match(error.message, /SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE="allow.txt": an absolute path/);
      return true;
    });
  });

  it("refuses both the list and a file", () => {
    assert.throws(() => hostAllowlist({ SCHEDULER_SERVICES_ALLOWED_COMMANDS: ["/usr/bin/node"], SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE: "/etc/allow" }), /both SCHEDULER_SERVICES_ALLOWED_COMMANDS and SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE are set/);
    assert.throws(() => hostAllowlist({ SCHEDULER_SERVICES_ALLOWED_ENV: ["LOG_LEVEL"], SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE: "/etc/allow" }), (error: unknown) => {
      assert.ok(error instanceof SchedulerError);
      assert.match(error.describe(), /both SCHEDULER_SERVICES_ALLOWED_ENV and SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE are set[\s\S]*an env: line of it/);
      return true;
    });
    assert.equal(hostAllowlist({}), NOTHING_ALLOWED);
  });
});

describe("parsing SCHEDULER_SERVICES_ALLOWED_ENV", () => {
  it("takes variable names and prefixes ending in _*, trimmed; anything else is named", () => {
    assert.deepEqual(parseEnvAllowlist(" LOG_LEVEL , MYAPP_* ,_UNDERSCORE"), { env: ["LOG_LEVEL", "MYAPP_*", "_UNDERSCORE"], problems: [] });
    const { problems } = parseEnvAllowlist("*,A*,LOG-LEVEL,,1X,OK,_*");
    assert.equal(problems.length, 6);
    assert.match(problems[0]!, /^env item 1 "\*" is neither a variable name \(letters, digits and '_', not starting with a digit\) nor a prefix ending in _\* such as MYAPP_\*$/);
    assert.match(problems[1]!, /env item 2 "A\*"/);
    assert.match(problems[2]!, /env item 3 "LOG-LEVEL"/);
    assert.match(problems[3]!, /env item 4 is empty/);
    assert.match(problems[4]!, /env item 5 "1X"/);
    assert.match(problems[5]!, /env item 7 "_\*"/);
  });

  it("a prefix matches the keys that start with it, a name only itself", () => {
    assert.ok(envKeyAllowed(["MYAPP_*"], "MYAPP_X") && envKeyAllowed(["MYAPP_*"], "MYAPP_"));
    assert.ok(!envKeyAllowed(["MYAPP_*"], "MYAPP") && !envKeyAllowed(["MYAPP_*"], "XMYAPP_A"));
    assert.ok(envKeyAllowed(["HOME"], "HOME") && !envKeyAllowed(["HOME"], "HOMEDIR") && !envKeyAllowed([], "HOME"));
  });

  it("comes from the configuration, or from the env: lines of the allowlist file", () => {
    const config = loadConfig({ SCHEDULER_SERVICES_ALLOWED_ENV: "LOG_LEVEL, MYAPP_*" });
    assert.deepEqual(config.SCHEDULER_SERVICES_ALLOWED_ENV, ["LOG_LEVEL", "MYAPP_*"]);
    assert.deepEqual(hostAllowlist(config), { entries: [], env: ["LOG_LEVEL", "MYAPP_*"], source: "unset" });
    assert.deepEqual(hostAllowlist({ SCHEDULER_SERVICES_ALLOWED_COMMANDS: ["/usr/bin/node"], SCHEDULER_SERVICES_ALLOWED_ENV: ["A"] }), { entries: ["/usr/bin/node"], env: ["A"], source: "the environment" });
    assert.throws(() => loadConfig({ SCHEDULER_SERVICES_ALLOWED_ENV: "LOG_LEVEL,NODE_OPTIONS=x" }), /SCHEDULER_SERVICES_ALLOWED_ENV="LOG_LEVEL,NODE_OPTIONS=x": env item 2 "NODE_OPTIONS=x" is neither a variable name/);
    assert.deepEqual(parseAllowlist("/usr/bin/node\nenv: LOG_LEVEL, MYAPP_*\n# more\nenv:TZ_NAME\n/opt/a/", { lines: true }), {
      entries: ["/usr/bin/node", "/opt/a/"],
      env: ["LOG_LEVEL", "MYAPP_*", "TZ_NAME"],
      problems: [],
    });
    assert.deepEqual(parseAllowlist("/usr/bin/node\nenv: OK, bad key", { lines: true }).problems, [`env item 2 "bad key" is neither a variable name (letters, digits and '_', not starting with a digit) nor a prefix ending in _* such as MYAPP_*`]);
    assert.deepEqual(parseAllowlist("env: A").problems.length, 1, "in the variable, env: is no keyword: not an absolute path");
  });
});

describe("the allowlist file", () => {
  const me = process.getuid!();
  it("must be a regular file of the node's user that nobody else can read or write", () => {
    assert.equal(allowlistFileProblem("/f", { uid: me, mode: 0o100600, isFile: true }, me), null);
    assert.equal(allowlistFileProblem("/f", { uid: me, mode: 0o100400, isFile: true }, me), null);
    assert.match(allowlistFileProblem("/f", { uid: me, mode: 0o100644, isFile: true }, me)!, /\/f can be read by other users \(mode 644\); fix: chmod 600 \/f/);
    assert.match(allowlistFileProblem("/f", { uid: me, mode: 0o100640, isFile: true }, me)!, /can be read by other users \(mode 640\)/);
    assert.match(allowlistFileProblem("/f", { uid: me, mode: 0o100602, isFile: true }, me)!, /can be written by other users \(mode 602\)/);
    assert.match(allowlistFileProblem("/f", { uid: me + 1, mode: 0o100600, isFile: true }, me)!, new RegExp(`owned by uid ${me + 1}, not by this node's user \\(uid ${me}\\); fix: chown`));
    assert.match(allowlistFileProblem("/f", { uid: me, mode: 0o040700, isFile: false }, me)!, /not a regular file/);
  });

  it("is read when it passes, refused with the fix when it does not", () => {
    const file = path.join(tempLogDir(), "allowed-commands");
    fs.writeFileSync(file, `# this host\n${process.execPath}\n/opt/agents/\nenv: LOG_LEVEL\n`, { mode: 0o600 });
    assert.deepEqual(readAllowlistFile(file), { entries: [process.execPath, "/opt/agents/"], env: ["LOG_LEVEL"], source: file });
    assert.deepEqual(hostAllowlist({ SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE: file }).entries, [process.execPath, "/opt/agents/"]);
    fs.chmodSync(file, 0o644);
    assert.throws(() => readAllowlistFile(file), (error: unknown) => {
      assert.ok(error instanceof SchedulerError);
      assert.equal(error.exitCode, 2);
      assert.match(error.describe(), /SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE: .* can be read by other users \(mode 644\); fix: chmod 600/);
      return true;
    });
    fs.chmodSync(file, 0o600);
    fs.writeFileSync(file, "relative/prog\n");
    assert.throws(() => readAllowlistFile(file), /item 1 'relative\/prog' is not an absolute path/);
    assert.throws(() => readAllowlistFile(path.join(path.dirname(file), "missing")), /cannot open .*missing/);
  });

  it("owned by another user is refused", { skip: process.getuid?.() === 0 ? false : "needs root to give the file away" }, () => {
    const file = path.join(tempLogDir(), "theirs");
    fs.writeFileSync(file, `${process.execPath}\n`, { mode: 0o600 });
    fs.chownSync(file, 65534, 65534);
    assert.throws(() => readAllowlistFile(file), /owned by uid 65534, not by this node's user \(uid 0\)/);
  });
});

describe("resolving a service's program", () => {
  it("a row may set only the environment variables the host lists: exact names, or prefixes ending in _*", () => {
    const list = { ...allowNode, env: ["LOG_LEVEL", "MYAPP_*"] };
    const verdict = (env: Record<string, string>) => checkService({ name: "web", command: process.execPath, cwd: null, env }, list);
    assert.equal(verdict({ LOG_LEVEL: "debug", MYAPP_MODE: "x", MYAPP_: "" }).allowed, true);
    for (const [env, refusal] of [
      [{ NODE_OPTIONS: "--require /tmp/x.js" }, /^env key "NODE_OPTIONS" is not allowed on this host \(not listed in SCHEDULER_SERVICES_ALLOWED_ENV\)$/],
      [{ LOG_LEVEL: "1", LD_PRELOAD: "/tmp/x.so", PATH: "/tmp" }, /^env keys "LD_PRELOAD", "PATH" are not allowed on this host/],
      [{ MYAPP: "x" }, /"MYAPP" is not allowed/],
      [{ log_level: "x" }, /"log_level" is not allowed/],
      [{ "LOG_LEVEL=x": "1" }, /^env key "LOG_LEVEL=x" is not a valid variable name \(letters, digits and '_', not starting with a digit\), so the row is refused on every host$/],
      [{ "": "1", "A B": "2" }, /^env keys "", "A B" are not valid variable names/],
      [{ SYSTEMPROMPT_SERVICE_INSTANCE: "x" }, /^env key "SYSTEMPROMPT_SERVICE_INSTANCE" is reserved for the reconciler's own markers$/],
    ] as const) {
      const refused = verdict(env);
      assert.ok(!refused.allowed && "refusal" in refused, JSON.stringify(env));
      assert.match(refused.refusal, refusal);
    }
    const none = checkService({ name: "web", command: process.execPath, cwd: null, env: { A: "1" } }, allowNode);
    assert.ok(!none.allowed && "refusal" in none);
    assert.match(none.refusal, /env key "A" is not allowed on this host \(SCHEDULER_SERVICES_ALLOWED_ENV is not set, so a row may set no variable\)/);
    assert.match(none.fix, /^add A to SCHEDULER_SERVICES_ALLOWED_ENV \(or, with SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE, to an env: line of that file\) on this host and restart its scheduler, or remove it from the service's env$/);
    const fromFile = checkService({ name: "web", command: process.execPath, cwd: null, env: { A: "1" } }, { ...allowNode, source: "/etc/allowed" });
    assert.ok(!fromFile.allowed && "refusal" in fromFile);
    assert.match(fromFile.refusal, /\(\/etc\/allowed has no env: line, so a row may set no variable\)/);
    assert.match(fromFile.fix, /^add A to an env: line of \/etc\/allowed on this host/);
  });

  it("a service name is checked on the host as by the CLI", () => {
    for (const name of ["a/b", "..", ".hidden", "-x", "a b", "x".repeat(101)]) {
      const verdict = checkService({ name, command: process.execPath, cwd: null, env: {} }, allowNode);
      assert.ok(!verdict.allowed && "refusal" in verdict, name);
      assert.match(verdict.refusal, /^the service name ".*" is not valid \(letters, digits, '\.', '_' and '-', starting with a letter or digit, at most 100\)/, name);
    }
    assert.ok(checkService({ name: "web_1.v2-a", command: process.execPath, cwd: null, env: {} }, allowNode).allowed);
  });

  it("follows symlinks and '..', looks bare names up in the node's PATH, and executes the real path", () => {
    const dir = allowedDir();
    fs.copyFileSync(sh, path.join(dir, "tool"));
    fs.chmodSync(path.join(dir, "tool"), 0o755);
    const list = allowing(process.execPath, `${dir}/`);
    const real = fs.realpathSync(process.execPath);
    // argv[0] is the entry that allowed it: the file's entry, or the real path below a directory entry
    assert.deepEqual(checkService({ name: "a", command: path.join(dir, "node"), cwd: null, env: {} }, list), { allowed: true, executable: real, argv0: process.execPath });
    assert.deepEqual(checkService({ name: "a", command: "./node", cwd: dir, env: {} }, list), { allowed: true, executable: real, argv0: process.execPath });
    const tool = path.join(fs.realpathSync(dir), "tool");
    assert.deepEqual(checkService({ name: "a", command: "tool", cwd: null, env: {} }, list, { PATH: `/no/such:${dir}` }), { allowed: true, executable: tool, argv0: tool });
    for (const command of ["/bin/sh", `${dir}/${toRoot(dir)}bin/sh`, `${dir}/innocent`, "sh"]) {
      const verdict = checkService({ name: "a", command, cwd: null, env: {} }, list);
      assert.ok(!verdict.allowed && "refusal" in verdict, command);
      assert.match(verdict.refusal, new RegExp(`^${sh}.* is not allowed by SCHEDULER_SERVICES_ALLOWED_COMMANDS`), command);
    }
    // a directory entry allows what is below it, not a sibling whose name merely starts the same
    fs.mkdirSync(`${dir}-evil`);
    fs.copyFileSync(sh, `${dir}-evil/tool`);
    fs.chmodSync(`${dir}-evil/tool`, 0o755);
    assert.ok(!checkService({ name: "a", command: `${dir}-evil/tool`, cwd: null, env: {} }, allowing(dir + "/")).allowed);
  });

  it("a missing program is an ordinary start failure, not a refusal", () => {
    const verdict = checkService({ name: "a", command: "/no/such/agent", cwd: null, env: {} }, allowNode);
    assert.ok(!verdict.allowed && "notFound" in verdict);
  });
});

describe("the reconciler never runs what the host does not allow", () => {
  it("refuses /bin/sh, a climb out of an allowed directory, a PATH lookup, a relative path, a symlink out and LD_PRELOAD; starts the allowed one", async () => {
    const dir = allowedDir();
    const markers = path.join(tempLogDir(), "markers");
    fs.mkdirSync(markers);
    const marker = (name: string) => path.join(markers, name);
    const touch = (name: string) => ["-c", `touch ${marker(name)}; exec sleep 30`];
    const refused: { name: string; error: RegExp }[] = [
      { name: "absolute", error: new RegExp(`${sh} \\(resolved from '/bin/sh'\\)|^not allowed to run service absolute: ${sh} is not allowed`) },
      { name: "climb", error: new RegExp(`${sh} \\(resolved from '.*/allowed/dir/(\\.\\./)+bin/sh'\\)`) },
      { name: "bare", error: new RegExp(`${sh} \\(resolved from 'sh'\\)`) },
      { name: "relative", error: new RegExp(`${sh} \\(resolved from '(\\.\\./)+bin/sh'\\)`) },
      { name: "symlink", error: new RegExp(`${sh} \\(resolved from '.*/allowed/dir/innocent'\\)`) },
      { name: "preload", error: /env key "LD_PRELOAD" is not allowed on this host/ },
      { name: "path-env", error: /env key "PATH" is not allowed on this host/ },
    ];
    await insert("absolute", await freePort(), "/bin/sh", touch("absolute"));
    await insert("climb", await freePort(), `${dir}/${toRoot(dir)}bin/sh`, touch("climb"));
    await insert("bare", await freePort(), "sh", touch("bare"));
    await insert("relative", await freePort(), `${toRoot(dir)}bin/sh`, touch("relative"), { cwd: dir });
    await insert("symlink", await freePort(), `${dir}/innocent`, touch("symlink"));
    await insert("preload", await freePort(), process.execPath, ["-e", `require("fs").writeFileSync(${JSON.stringify(marker("preload"))}, "")`], { env: { LD_PRELOAD: "/nonexistent/preload.so" } });
    await insert("path-env", await freePort(), "innocent", touch("path-env"), { env: { PATH: dir } });
    const okPort = await freePort();
    await insert("ok", okPort, `${dir}/node`, [fixture]);

    const ctx = reconcileContext(db.pool, host, { allowlist: allowing(process.execPath, `${dir}/`) });
    const first = await pass(ctx);
    assert.deepEqual(first.failed.map((failure) => failure.name).sort(), refused.map((r) => r.name).sort());
    for (const { name, error } of refused) {
      const current = await row(db.pool, name);
      assert.equal(current?.status, "failed", name);
      assert.equal(current?.pid, null, name);
      assert.match(current?.last_error ?? "", /^not allowed to run service /, name);
      assert.match(current?.last_error ?? "", /SCHEDULER_SERVICES_ALLOWED_(COMMANDS|ENV)/, name);
      assert.match(current?.last_error ?? "", error, name);
      assert.match(current?.last_error ?? "", /nothing was run/, name);
    }
    await waitFor("ok running", async () => {
      await pass(ctx);
      return (await row(db.pool, "ok"))?.status === "running";
    });
    assert.equal(await (await fetch(`http://127.0.0.1:${okPort}/`)).text(), "ok\n");
    // refused rows are left alone: no retry loop, and a dry run says why
    const absolute = (await planHost(ctx)).find((plan) => plan.row.name === "absolute");
    assert.equal(absolute?.action, "none");
    assert.match(absolute?.reason ?? "", /refused by this host's SCHEDULER_SERVICES_ALLOWED_COMMANDS \(see last_error\)/);
    for (let i = 0; i < 3; i += 1) assert.deepEqual((await pass(ctx)).actions, []);
    await new Promise((resolve) => setTimeout(resolve, 300)); // anything spawned would have written by now
    assert.deepEqual(fs.readdirSync(markers), [], "no refused service ran");
    for (const { name } of refused) assert.equal((await row(db.pool, name))?.status, "failed", name);
  });

  it("unset, nothing may start; a change of the row takes it out of failed, and it is checked again", async () => {
    const port = await freePort();
    await insert("web", port, process.execPath, [fixture]);
    const nothing = reconcileContext(db.pool, host, { allowlist: NOTHING_ALLOWED });
    await pass(nothing);
    const refused = await row(db.pool, "web");
    assert.equal(refused?.status, "failed");
    assert.match(refused?.last_error ?? "", new RegExp(`SCHEDULER_SERVICES_ALLOWED_COMMANDS is not set on this host, so no service may run here \\(this one would run ${fs.realpathSync(process.execPath)}\\)`));
    assert.match(refused?.last_error ?? "", /fix: list the programs services may run in SCHEDULER_SERVICES_ALLOWED_COMMANDS/);
    await db.pool.query("update services set env = '{\"NODE_OPTIONS\": \"--require /tmp/x.js\"}' where name = 'web'");
    const ctx = reconcileContext(db.pool, host, { allowlist: allowNode });
    await pass(ctx);
    assert.equal((await row(db.pool, "web"))?.status, "failed", "allowed program, refused environment");
    await db.pool.query("update services set env = '{}' where name = 'web'");
    await waitFor("running", async () => {
      await pass(ctx);
      return (await row(db.pool, "web"))?.status === "running";
    });
  });

  it("a restart with an extended allowlist tries the refused services once more", async () => {
    await insert("web", await freePort(), process.execPath, [fixture]);
    await insert("shell", await freePort(), "/bin/sh", ["-c", "exec sleep 30"]);
    const options = { pool: db.pool, host, logger: testLogger, intervalMs: 60_000, protectedPorts: [], logDir: tempLogDir(), policy: fastPolicy };
    let loop = await startServiceReconciler({ ...options, allowlist: allowing("/no/such/program") });
    await waitFor("both refused", async () => {
      await loop.reconcileNow();
      return (await row(db.pool, "web"))?.status === "failed" && (await row(db.pool, "shell"))?.status === "failed";
    });
    await loop.stop();
    loop = await startServiceReconciler({ ...options, allowlist: allowNode });
    try {
      await waitFor("web running", async () => {
        await loop.reconcileNow();
        return (await row(db.pool, "web"))?.status === "running";
      });
      const shell = await row(db.pool, "shell");
      assert.equal(shell?.status, "failed", "still not allowed: refused again, once");
      assert.match(shell?.last_error ?? "", /is not allowed by SCHEDULER_SERVICES_ALLOWED_COMMANDS/);
      assert.equal((await row(db.pool, "web"))?.last_error, null, "the old refusal is gone");
    } finally {
      await loop.stop();
    }
  });
});
