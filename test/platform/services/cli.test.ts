import assert from "node:assert/strict";
import { after, afterEach, beforeEach, describe, it } from "node:test";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { servicesCommand } from "../../../src/cli/commands/services.ts";
import type { CliContext } from "../../../src/cli/command.ts";
import { loadConfig } from "../../../src/config.ts";
import { SchedulerError } from "../../../src/engine/errors.ts";
import { startServiceReconciler, type ServiceReconciler } from "../../../src/platform/services/loop.ts";
import { findProgram } from "../../../src/platform/services/program.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { addService, allowing, allowNode, alive, fastPolicy, fixture, freePort, killEverything, removeTempDirs, row, tempLogDir, uniqueHost, waitFor } from "./fixtures/harness.ts";

const db = useTestDatabase();
const host = uniqueHost("cli");
let loop: ServiceReconciler | null = null;

after(() => {
  killEverything([host]);
  removeTempDirs();
});
beforeEach(async () => {
  killEverything([host]);
  await db.pool.query("delete from services");
});
afterEach(async () => {
  await loop?.stop();
  loop = null;
});

/** Runs `services <argv>` as main.ts would, collecting what it prints. */
async function services(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  const [name, ...rest] = argv;
  const command = servicesCommand.subcommands!.find((sub) => sub.name === name)!;
  const parsed = parseArgs({ args: rest, options: command.options ?? {}, allowPositionals: true, strict: true });
  const lines: string[] = [];
  const ctx: CliContext = {
    config: loadConfig({ DATABASE_URL: db.connectionString, SCHEDULER_HOST: host, ...env }),
    logger: testLogger,
    pool: async () => db.pool,
    print: (text) => lines.push(text),
  };
  const code = await command.run(ctx, { values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals });
  return { code, out: lines.join("\n") };
}

async function rejectsWith(argv: string[], code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(services(argv), (error: unknown) => {
    assert.ok(error instanceof SchedulerError, String(error));
    assert.equal(error.code, code);
    assert.match(error.describe(), pattern);
    return true;
  });
}

describe("services CLI", () => {
  it("adds a service with arguments and environment, lists it as a table and as JSON", async () => {
    const port = await freePort();
    const added = await services(["add", "web", "--command", process.execPath, "--port", String(port), "--module", "mcp", "--env", "A=1", "--env", "B=x=y", "--", fixture, "--verbose"]);
    assert.equal(added.code, 0);
    assert.match(added.out, new RegExp(`service web added on host ${host}`));
    const stored = await row(db.pool, "web");
    assert.deepEqual(stored?.args, [fixture, "--verbose"]);
    assert.deepEqual(stored?.env, { A: "1", B: "x=y" });
    assert.equal(stored?.module_name, "mcp");
    const table = await services(["list"]);
    assert.match(table.out, /NAME\s+MODULE\s+HOST/);
    assert.match(table.out, new RegExp(`web\\s+mcp\\s+${host}\\s+${port}\\s+enabled\\s+stopped`));
    const json = JSON.parse((await services(["list", "--json"])).out);
    assert.equal(json.length, 1);
    assert.equal(json[0].name, "web");
  });

  it("rejects bad definitions, naming every problem, and duplicates unless --replace", async () => {
    await rejectsWith(["add", "bad name", "--command", "", "--port", "70000", "--module", "robot", "--env", "1X=2"], "invalid_service", /name 'bad name'[\s\S]*module 'robot'[\s\S]*command[\s\S]*port '70000'[\s\S]*env '1X'/);
    await rejectsWith(["add", "pg", "--command", "sh", "--port", "5432"], "invalid_service", /port 5432: is protected/);
    await rejectsWith(["add", "web", "--command", "sh", "--port", "8080", "--env", "NOEQUALS"], "usage", /KEY=VALUE/);
    await rejectsWith(["add", "web", "--command", "sh"], "usage", /--port/);
    await services(["add", "web", "--command", "sh", "--port", "8080"]);
    await rejectsWith(["add", "web", "--command", "sleep", "--port", "8081"], "service_exists", /--replace/);
    await rejectsWith(["add", "other", "--command", "sleep", "--port", "8080"], "port_taken", /already used by service web/);
    const replaced = await services(["add", "web", "--command", "sleep", "--port", "8081", "--replace"]);
    assert.match(replaced.out, /replaced/);
    assert.equal((await row(db.pool, "web"))?.command, "sleep");
  });

  it("splits a quoted --command into the program and its arguments, like a shell would", async () => {
    const port = await freePort();
    const command = `'${process.execPath}' "${fixture}" --name 'two words' back\\ slash "say \\"hi\\"" ''`;
    assert.equal((await services(["add", "web", "--command", command, "--port", String(port), "--", "--verbose"])).code, 0);
    const stored = await row(db.pool, "web");
    assert.equal(stored?.command, process.execPath);
    assert.deepEqual(stored?.args, [fixture, "--name", "two words", "back slash", 'say "hi"', "", "--verbose"]);
  });

  it("refuses unbalanced quotes, shell features and programs that cannot run here, with the fix", async () => {
    const add = (command: string) => ["add", "web", "--command", command, "--port", "8080"];
    await rejectsWith(add('python3 -m http.server "8080'), "invalid_command", /unclosed double quote \(\"\) at character 24[\s\S]*fix: close it, e\.g\. --command "python3 -m http\.server 8080"/);
    await rejectsWith(add("node 'my server.js"), "invalid_command", /unclosed single quote/);
    await rejectsWith(add("node server.js \\"), "invalid_command", /ends with a backslash/);
    const script = /without a shell[\s\S]*fix: put the command line in a script/;
    await rejectsWith(add("node server.js | tee log"), "invalid_command", new RegExp(`'\\|' \\(character 16\\), a pipe.*${script.source}`));
    await rejectsWith(add("npm ci && node server.js"), "invalid_command", /'&&' \(character 8\), a command list/);
    await rejectsWith(add("node a.js; node b.js"), "invalid_command", /';'.*a command list/);
    await rejectsWith(add("node server.js --since $(date +%s)"), "invalid_command", /'\$\(\.\.\.\)'.*command substitution/);
    await rejectsWith(add('node server.js --home "$HOME"'), "invalid_command", /'\$'.*variable expansion/);
    await rejectsWith(add("node server.js > out.log"), "invalid_command", /'>'.*a redirection/);
    await rejectsWith(add("node *.js"), "invalid_command", /'\*'.*expand into file names/);
    await rejectsWith(add("LOG_LEVEL=debug node server.js"), "invalid_command", /fix: give it with --env LOG_LEVEL=debug/);
    await rejectsWith(add("no-such-program-sps --port 1"), "program_not_runnable", /program 'no-such-program-sps' was not found in the PATH[\s\S]*fix: install it/);
    await rejectsWith(add("/no/such/server"), "program_not_runnable", /program \/no\/such\/server does not exist on this host/);
    await rejectsWith(add(fixture), "program_not_runnable", /is not executable[\s\S]*chmod \+x/);
    await rejectsWith(add("./server.sh"), "program_not_runnable", /relative path[\s\S]*--cwd DIR/);
    await rejectsWith([...add("sh"), "--cwd", "/no/such/dir"], "program_not_runnable", /working directory \/no\/such\/dir does not exist/);
    assert.equal((await db.pool.query("select count(*)::int as n from services")).rows[0].n, 0, "nothing was stored");
    // Another host's files are not visible from here: stored, and said so.
    const remote = await services(["add", "remote", "--command", "no-such-program-sps", "--port", "8080", "--host", "elsewhere"]);
    assert.match(remote.out, /not checked here: that no-such-program-sps exists on host elsewhere/);
  });

  it("the reconciler starts a service added with a quoted command line", async () => {
    const dir = path.join(tempLogDir(), "my services");
    fs.mkdirSync(dir);
    const script = path.join(dir, "http server.ts");
    fs.copyFileSync(fixture, script);
    const port = await freePort();
    await services(["add", "web", "--command", `'${process.execPath}' "${script}" --listen-delay 0`, "--port", String(port)]);
    loop = await startServiceReconciler({ pool: db.pool, host, logger: testLogger, intervalMs: 60_000, protectedPorts: [], logDir: tempLogDir(), policy: fastPolicy, allowlist: allowNode });
    await waitFor("running", async () => {
      await loop!.reconcileNow();
      return (await row(db.pool, "web"))?.status === "running";
    });
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "ok\n");
  });

  it("a row written in SQL with a whole command line in `command` fails to start, saying where its arguments go", async () => {
    await addService(db.pool, { name: "raw", host, port: await freePort(), command: "python3 -m http.server 8080", args: [] });
    loop = await startServiceReconciler({ pool: db.pool, host, logger: testLogger, intervalMs: 60_000, protectedPorts: [], logDir: tempLogDir(), policy: fastPolicy, allowlist: allowNode });
    const error = await waitFor("a recorded failure", async () => {
      await loop!.reconcileNow();
      return (await row(db.pool, "raw"))?.last_error;
    });
    assert.match(error, /was not found in the PATH[\s\S]*its arguments go in args \(services add --command "python3 -m http\.server 8080" splits it for you\)/);
  });

  const python = findProgram("python3", { cwd: process.cwd(), pathEnv: process.env.PATH });
  it("the reconciler starts `python3 -m http.server PORT` given as one --command", { skip: python.found ? false : "python3 is not installed" }, async () => {
    const port = await freePort();
    const cwd = tempLogDir();
    await services(["add", "py", "--command", `python3 -m http.server ${port} --bind 127.0.0.1`, "--port", String(port), "--cwd", cwd]);
    assert.deepEqual((await row(db.pool, "py"))?.args, ["-m", "http.server", String(port), "--bind", "127.0.0.1"]);
    loop = await startServiceReconciler({ pool: db.pool, host, logger: testLogger, intervalMs: 60_000, protectedPorts: [], logDir: tempLogDir(), policy: fastPolicy, allowlist: allowing(python.found ? python.path : "/nonexistent") });
    await waitFor("running", async () => {
      await loop!.reconcileNow();
      return (await row(db.pool, "py"))?.status === "running";
    });
    assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
  });

  it("add warns when this host's allowlist would refuse the service, naming the variable, the resolved path and the fix; it stores it all the same", async () => {
    const sh = fs.realpathSync("/bin/sh");
    const unset = await services(["add", "a", "--command", "sh -c true", "--port", "8080"]);
    assert.match(unset.out, new RegExp(`warning: service a will not start on host ${host}: SCHEDULER_SERVICES_ALLOWED_COMMANDS is not set on this host, so no service may run here \\(this one would run ${sh} \\(resolved from 'sh'\\)\\)\n  fix: list the programs`));
    const allowNodeEnv = { SCHEDULER_SERVICES_ALLOWED_COMMANDS: process.execPath };
    const other = await services(["add", "b", "--command", "sh -c true", "--port", "8081"], allowNodeEnv);
    assert.match(other.out, new RegExp(`warning: service b will not start on host ${host}: ${sh} \\(resolved from 'sh'\\) is not allowed by SCHEDULER_SERVICES_ALLOWED_COMMANDS on this host\n  fix: add ${sh} \\(or a directory holding it, ending in /\\) to SCHEDULER_SERVICES_ALLOWED_COMMANDS`));
    const env = await services(["add", "c", "--command", process.execPath, "--port", "8082", "--env", "LD_PRELOAD=/tmp/x.so"], allowNodeEnv);
    assert.match(env.out, /warning: service c will not start .*env key "LD_PRELOAD" is not allowed on this host \(SCHEDULER_SERVICES_ALLOWED_ENV is not set, so a row may set no variable\)\n  fix: add LD_PRELOAD to SCHEDULER_SERVICES_ALLOWED_ENV/);
    const fine = await services(["add", "d", "--command", process.execPath, "--port", "8083", "--env", "LOG_LEVEL=debug"], { ...allowNodeEnv, SCHEDULER_SERVICES_ALLOWED_ENV: "LOG_LEVEL" });
    assert.doesNotMatch(fine.out, /warning/);
    const remote = await services(["add", "e", "--command", "sh", "--port", "8084", "--host", "elsewhere", "--env", "NODE_OPTIONS=-r x"], allowNodeEnv);
    assert.match(remote.out, /not checked here: that sh exists on host elsewhere, and that its SCHEDULER_SERVICES_ALLOWED_COMMANDS allows it and its SCHEDULER_SERVICES_ALLOWED_ENV NODE_OPTIONS\n?$/);
    const stored = (await db.pool.query("select name from services order by name")).rows.map((r) => r.name);
    assert.deepEqual(stored, ["a", "b", "c", "d", "e"], "warned, and stored");
  });

  it("enables and disables, and names unknown services", async () => {
    await services(["add", "web", "--command", "sh", "--port", "8080", "--disabled"]);
    assert.equal((await row(db.pool, "web"))?.desired_status, "disabled");
    assert.match((await services(["enable", "web"])).out, /enabled/);
    assert.equal((await row(db.pool, "web"))?.desired_status, "enabled");
    assert.match((await services(["disable", "web"])).out, /removes its row/);
    await rejectsWith(["enable", "nope"], "unknown_service", /no service named 'nope'/);
  });

  it("reconcile waits for the host's scheduler and prints its pass; without one it says so", async () => {
    await rejectsWith(["reconcile", "--timeout", "0.3"], "no_reconciler", /no scheduler of host .* answered[\s\S]*--dry-run/);
    await addService(db.pool, { name: "web", host, port: await freePort() });
    const dry = await services(["reconcile", "--dry-run"]);
    assert.match(dry.out, /web\s+enabled\s+stopped\s+start/);
    assert.equal((await row(db.pool, "web"))?.pid, null, "a dry run starts nothing");
    loop = await startServiceReconciler({ pool: db.pool, host, logger: testLogger, intervalMs: 60_000, protectedPorts: [], logDir: tempLogDir(), policy: fastPolicy, allowlist: allowNode });
    await waitFor("started", async () => (await row(db.pool, "web"))?.status === "running" || (await services(["reconcile"])) && false, 10_000, 200);
    const json = JSON.parse((await services(["reconcile", "--json"])).out);
    assert.equal(json.host, host);
    assert.equal(json.services, 1);
  });

  it("stop disables and stops a service of this host, refuses another host's", async () => {
    const port = await freePort();
    await addService(db.pool, { name: "stubborn", host, port, args: [fixture, "--ignore-term"] });
    await addService(db.pool, { name: "remote", host: "elsewhere", port });
    await rejectsWith(["stop", "remote"], "wrong_host", /runs on host elsewhere/);
    loop = await startServiceReconciler({ pool: db.pool, host, logger: testLogger, intervalMs: 60_000, protectedPorts: [], logDir: tempLogDir(), policy: fastPolicy, allowlist: allowNode });
    const up = await waitFor("running", async () => {
      await loop!.reconcileNow();
      const current = await row(db.pool, "stubborn");
      return current?.status === "running" ? current : null;
    });
    await loop.stop();
    loop = null;
    const began = Date.now();
    const stopped = await services(["stop", "stubborn", "--grace", "0.3"]);
    assert.equal(stopped.code, 0, stopped.out);
    assert.ok(Date.now() - began >= 300, "the grace period was given");
    assert.ok(!alive(up.pid!));
    const after = await row(db.pool, "stubborn");
    assert.equal(after?.desired_status, "disabled");
    assert.equal(after?.status, "stopped");
  });

  it("cleanup removes disabled services without a process, here and for another host", async () => {
    await addService(db.pool, { name: "gone", host, port: await freePort(), desired: "disabled" });
    await addService(db.pool, { name: "kept", host, port: await freePort() });
    await addService(db.pool, { name: "remote-gone", host: "elsewhere", port: 9001, desired: "disabled" });
    await addService(db.pool, { name: "remote-live", host: "elsewhere", port: 9002, desired: "disabled" });
    await db.pool.query("update services set pid = 1234, status = 'running' where name = 'remote-live'");
    assert.match((await services(["cleanup"])).out, /removed 1 stale service\(s\) on host .*: gone/);
    assert.deepEqual(JSON.parse((await services(["cleanup", "--host", "elsewhere", "--json"])).out), { host: "elsewhere", removed: ["remote-gone"] });
    const left = (await db.pool.query("select name from services order by name")).rows.map((r) => r.name);
    assert.deepEqual(left, ["kept", "remote-live"]);
  });
});
