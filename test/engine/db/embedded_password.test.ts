import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { connectionStringFor, runningServer, startEmbeddedPostgres, type EmbeddedPostgres } from "../../../src/engine/db/embedded/index.ts";
import { passwordFileOf } from "../../../src/engine/db/embedded/password.ts";
import { freePort } from "../../../scripts/free-port.ts";
import { runCliProcess } from "../../helpers/cli.ts";
import { testLogger } from "../../helpers/db.ts";

// The embedded PostgreSQL's superuser password, on one real cluster (initdb is slow): random
// per data folder, in a 0600 file inside it; a folder made with the old fixed password keeps
// working and is upgraded at its next start; `db url` and `db psql` use the file.

let dir: string;
let dataDir: string;
let port: number;
let server: EmbeddedPostgres | null = null;

const PASSWORD_SHAPE = /^[A-Za-z0-9_-]{32}$/;
const cliEnv = () => ({ DATABASE_URL: "", SCHEDULER_DATA_DIR: dataDir, SCHEDULER_EMBEDDED_PORT: String(port) });
const urlWith = (password: string) => `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
const filePassword = () => fs.readFileSync(passwordFileOf(dataDir), "utf8").trim();

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

/** The SQLSTATE connecting with `url` fails with (null: it connects). */
async function refusal(url: string): Promise<string | null> {
  try {
    await query(url, "select 1");
    return null;
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

async function start(): Promise<EmbeddedPostgres> {
  server = await startEmbeddedPostgres({ dataDir, port, logger: testLogger });
  return server;
}

async function stop(): Promise<void> {
  await server?.stop();
  server = null;
}

/** As a folder of an older version: the fixed password, no password file. */
async function makeLegacy(): Promise<void> {
  const running = await start();
  await query(running.connectionString, "alter role postgres password 'postgres'");
  await stop();
  fs.rmSync(passwordFileOf(dataDir));
}

describe("the embedded PostgreSQL's password", () => {
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-pgpass-"));
    fs.chmodSync(dir, 0o755);
    dataDir = path.join(dir, "data");
    port = await freePort();
  });
  after(async () => {
    await stop().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a fresh folder gets a random password in a 0600 file inside it; the old fixed one is refused; every connection needs a password", async () => {
    const refused = await runCliProcess(["db", "url"], cliEnv());
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /there is no embedded PostgreSQL in .* yet, so it has no password/);

    const running = await start();
    const stat = fs.statSync(passwordFileOf(dataDir));
    assert.equal(stat.mode & 0o777, 0o600);
    const password = filePassword();
    assert.match(password, PASSWORD_SHAPE);
    assert.equal(running.connectionString, urlWith(password));
    assert.deepEqual(await query(running.connectionString, "select current_user as who, (select rolsuper from pg_roles where rolname = current_user) as superuser"), [{ who: "postgres", superuser: true }]);
    assert.equal(await refusal(urlWith("postgres")), "28P01", "the old fixed password is refused");

    const rules = await query<{ type: string; auth_method: string }>(running.connectionString, "select type, auth_method from pg_hba_file_rules where error is null");
    assert.ok(rules.length > 0);
    assert.deepEqual([...new Set(rules.map((rule) => rule.auth_method))], ["scram-sha-256"], "no trust: every rule asks for the password");
    const cmdline = fs.readFileSync(`/proc/${runningServer(dataDir)!.pid}/cmdline`, "utf8");
    assert.ok(!cmdline.includes(password), "the password is in no process's arguments");

    await query(running.connectionString, "create table kept (note text); insert into kept values ('made before the upgrade')");
    await stop();
  });

  it("a folder made with the old fixed password keeps working until its next start, which gives it a random one (an interrupted upgrade is finished, a lost file replaced)", async () => {
    await makeLegacy();
    const legacyUrl = await runCliProcess(["db", "url"], cliEnv());
    assert.equal(legacyUrl.code, 0, legacyUrl.stderr);
    assert.equal(legacyUrl.stdout.trim(), urlWith("postgres"), "before its next start, the old password is the one it has");

    // An upgrade interrupted after writing its pending password (or after setting it too).
    const pending = `${passwordFileOf(dataDir)}.pending`;
    fs.writeFileSync(pending, "resumedPendingPassword0123456789\n", { mode: 0o600 });
    let running = await start();
    assert.equal(filePassword(), "resumedPendingPassword0123456789", "the pending password was set and kept");
    assert.equal(fs.existsSync(pending), false);
    assert.equal(await refusal(urlWith("postgres")), "28P01");
    assert.deepEqual(await query(running.connectionString, "select note from kept"), [{ note: "made before the upgrade" }]);
    await stop();

    await makeLegacy();
    running = await start();
    const upgraded = filePassword();
    assert.match(upgraded, PASSWORD_SHAPE);
    assert.equal(fs.statSync(passwordFileOf(dataDir)).mode & 0o777, 0o600);
    assert.equal(running.connectionString, urlWith(upgraded));
    assert.equal(await refusal(urlWith("postgres")), "28P01");
    assert.equal(await refusal(running.connectionString), null);

    // A lost password file: the next start sets a new one the same way (single-user mode needs none).
    await stop();
    fs.rmSync(passwordFileOf(dataDir));
    running = await start();
    assert.notEqual(filePassword(), upgraded);
    assert.equal(await refusal(running.connectionString), null);
  });

  it("db url prints a URL that connects; db psql connects with it", async () => {
    assert.ok(server, "the server of the previous test runs");
    const printed = await runCliProcess(["db", "url"], cliEnv());
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stdout.trim(), connectionStringFor(dataDir, port));
    assert.deepEqual(await query(printed.stdout.trim(), "select current_user as who"), [{ who: "postgres" }]);
    if (!spawnSync("psql", ["--version"]).error) {
      const psql = await runCliProcess(["db", "psql", "--", "-tA", "-c", "select current_user"], cliEnv());
      assert.equal(psql.code, 0, psql.stderr);
      assert.equal(psql.stdout.trim(), "postgres");
    }
    await stop();
  });
});
