import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createPool, type Pool } from "../../../src/engine/db/pool.ts";
import { REFUSAL_PREFIX } from "../../../src/platform/services/allowlist.ts";
import { startServiceReconciler, type ServiceReconciler } from "../../../src/platform/services/loop.ts";
import { runCliProcess } from "../../helpers/cli.ts";
import { testLogger } from "../../helpers/db.ts";
import { createTestRoles, failureCode, rightsOf, type TestRoles } from "../../helpers/roles.ts";
import { allowNode, alive, fastPolicy, fixture, freePort, killEverything, removeTempDirs, row, tempLogDir, uniqueHost, waitFor } from "./fixtures/harness.ts";

// Who may change what a host runs: three real roles. The owner migrates; the runtime role (the
// nodes', the reconciler's) records only what it observes; the admin role registers, enables
// and disables services. A node taken over through SQL must not be able to make a host run
// another program.

let roles: TestRoles & { role(label: string): string };
let database: string;
let owner: string;
let runtime: string;
let admin: string;
let ownerPool: Pool;
let runtimePool: Pool;
let loop: ServiceReconciler | null = null;
const host = uniqueHost("admin");

const env = (role: string) => ({ DATABASE_URL: roles.url(role, database), SCHEDULER_HOST: host, SCHEDULER_RECONCILE_SERVICES: "false" });
const cli = (role: string, ...args: string[]) => runCliProcess(args, env(role));

/** The PostgreSQL error code a statement run as the runtime role fails with (null: it worked). */
const failureOf = (sql: string) => failureCode(runtimePool, sql);

describe("the services' desired state belongs to the admin role", () => {
  before(async () => {
    roles = await createTestRoles(["own", "rt", "adm", "dba", "dbadm"]);
    [owner, runtime, admin] = (["own", "rt", "adm"] as const).map((label) => roles.role(label)) as [string, string, string];
    database = await roles.createDatabase(owner);
    [ownerPool, runtimePool] = [owner, runtime].map((role) => createPool(roles.url(role, database), { max: 3 })) as [Pool, Pool];
  });
  after(async () => {
    await loop?.stop().catch(() => {});
    killEverything([host]);
    removeTempDirs();
    await ownerPool?.end().catch(() => {});
    await runtimePool?.end().catch(() => {});
    await roles?.drop();
  });

  it("migrate --runtime-role --admin-role grants both; the runtime role cannot change what a service runs", async () => {
    const result = await cli(owner, "migrate", "--runtime-role", runtime, "--admin-role", admin);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /sql\/platform\/026_services_removal_guard\.sql/);
    assert.match(result.stdout, new RegExp(`granted runtime role: ${runtime}\ngranted admin role: ${admin}`));

    await ownerPool.query(`insert into services (name, host, command, args, port, desired_status) values
      ('target', 'elsewhere', '/usr/bin/true', '{}', 40001, 'enabled'), ('parked', 'elsewhere', '/usr/bin/true', '{}', 40002, 'disabled')`);
    const target = (await ownerPool.query("select * from services where name = 'target'")).rows[0];
    for (const sql of [
      "update services set command = '/bin/sh' where name = 'target'",
      "update services set args = '{-c,id}' where name = 'target'",
      `update services set env = '{"LD_PRELOAD": "/tmp/x.so"}' where name = 'target'`,
      "update services set cwd = '/tmp' where name = 'target'",
      "update services set port = 40003 where name = 'target'",
      "update services set host = 'other' where name = 'target'",
      "update services set module_name = 'api' where name = 'target'",
      "update services set name = 'renamed' where name = 'target'",
      "update services set desired_status = 'enabled' where name = 'parked'",
      "update services set desired_status = 'disabled' where name = 'target'",
      "insert into services (name, host, command, port) values ('intruder', 'elsewhere', '/bin/sh', 40004)",
      "delete from services where name = 'target'",
      "truncate services",
    ]) {
      assert.equal(await failureOf(sql), "42501", sql);
    }
    assert.deepEqual((await ownerPool.query("select * from services where name = 'target'")).rows[0], target, "the row is as it was");
    await assert.rejects(runtimePool.query("delete from services where name = 'target'"), /permission denied to remove service target: it is enabled, and role .* may not change which services run/);

    // What the reconciler writes, it may: the observed columns, and removing a disabled row.
    assert.equal(await failureOf("update services set status = 'crashed', last_error = 'seen', pid = null, consecutive_failures = 1 where name = 'target'"), null);
    assert.equal(await failureOf("delete from services where name = 'parked'"), null);
    assert.equal((await ownerPool.query("select count(*)::int as n from services")).rows[0].n, 1);
    await ownerPool.query("delete from services");
  });

  it("services add, enable, disable and stop as the runtime role are refused, saying which role they need", async () => {
    const port = await freePort();
    const added = await cli(runtime, "services", "add", "web", "--command", process.execPath, "--port", String(port), "--", fixture);
    assert.equal(added.code, 2, added.stderr);
    const needs = (words: string) => new RegExp(`error: ${words} needs the scheduler's admin role \\(granted by migrate --admin-role ROLE\\); connected as "${runtime}"\\n  fix: run it with a DATABASE_URL of the admin role \\(or of the owner\\)`);
    assert.match(added.stderr, needs("services add"));
    await ownerPool.query("insert into services (name, host, command, args, port) values ('web', $1, $2, $3, $4)", [host, process.execPath, [fixture], port]);
    for (const words of ["enable", "disable", "stop"]) {
      const refused = await cli(runtime, "services", words, "web");
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, needs(`services ${words}`));
    }
    assert.deepEqual((await ownerPool.query("select name, desired_status from services")).rows, [{ name: "web", desired_status: "enabled" }]);
    const listed = await cli(runtime, "services", "list");
    assert.equal(listed.code, 0, listed.stderr);
    await ownerPool.query("delete from services");
  });

  it("as the admin role services add, enable, disable and stop work, and the reconciler as the runtime role starts, observes, stops and forgets the service", async () => {
    const port = await freePort();
    const added = await cli(admin, "services", "add", "web", "--command", process.execPath, "--port", String(port), "--env", "GREETING=hi", "--disabled", "--", fixture);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /service web added on host .* \(disabled, /);
    const enabled = await cli(admin, "services", "enable", "web");
    assert.equal(enabled.code, 0, enabled.stderr);
    // A program this host does not allow: refused and marked failed, tried again at the next start.
    const refusedAdd = await cli(admin, "services", "add", "shell", "--command", "/bin/sleep", "--port", String(await freePort()), "--", "60");
    assert.equal(refusedAdd.code, 0, refusedAdd.stderr);

    const start = () => startServiceReconciler({ pool: runtimePool, host, logger: testLogger, intervalMs: 60_000, protectedPorts: [], logDir: tempLogDir(), policy: fastPolicy, allowlist: { ...allowNode, env: ["GREETING"] } });
    loop = await start();
    const running = await waitFor("web to run", async () => {
      await loop!.reconcileNow();
      const current = await row(runtimePool, "web");
      return current?.status === "running" ? current : null;
    });
    assert.ok(running.pid && alive(running.pid));
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "ok\n");
    assert.equal((await row(runtimePool, "shell"))?.status, "failed");
    assert.ok((await row(runtimePool, "shell"))?.last_error?.startsWith(REFUSAL_PREFIX));

    // A restart takes the refused service out of `failed` (retry_refused.sql) as the runtime role.
    await loop.stop();
    loop = await start();
    await waitFor("shell to be refused again", async () => {
      await loop!.reconcileNow();
      return (await row(runtimePool, "shell"))?.status === "failed";
    });

    const disabled = await cli(admin, "services", "disable", "web");
    assert.equal(disabled.code, 0, disabled.stderr);
    await waitFor("web to be stopped and its row removed", async () => {
      await loop!.reconcileNow();
      return (await row(runtimePool, "web")) === undefined;
    });
    assert.equal(alive(running.pid), false);

    // Added again, then stopped as the admin role: the CLI signals the process and records the stop.
    const again = await cli(admin, "services", "add", "web", "--command", process.execPath, "--port", String(port), "--", fixture);
    assert.equal(again.code, 0, again.stderr);
    const restarted = await waitFor("web to run again", async () => {
      await loop!.reconcileNow();
      const current = await row(runtimePool, "web");
      return current?.status === "running" ? current : null;
    });
    await loop.stop();
    loop = null;
    const stopped = await cli(admin, "services", "stop", "web");
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(alive(restarted.pid!), false);
    assert.deepEqual((await ownerPool.query("select desired_status, status, pid from services where name = 'web'")).rows, [{ desired_status: "disabled", status: "stopped", pid: null }]);
    const cleaned = await cli(runtime, "services", "cleanup");
    assert.equal(cleaned.code, 0, cleaned.stderr);
    assert.match(cleaned.stdout, /removed 1 stale service\(s\) on host .*: web/);
  });

  it("--print-grants ROLE --admin-role ADMIN prints both; applied by a superuser, two other roles get exactly the same rights", async () => {
    const dba = roles.role("dba");
    const dbadm = roles.role("dbadm");
    const offline = { ...env(owner), DATABASE_URL: "postgres://nobody@127.0.0.1:1/none" };
    const print = await runCliProcess(["migrate", "--print-grants", dba, "--admin-role", dbadm], offline);
    assert.equal(print.code, 0, print.stderr);
    assert.match(print.stdout, /-- sql\/grants\/platform_admin\.sql\n/);
    assert.match(print.stdout, new RegExp(`grant select, insert, update, delete on services to "${dbadm}";`));
    assert.match(print.stdout, new RegExp(`revoke insert, update, delete on services from "${dba}";`));
    assert.match(print.stdout, new RegExp(`grant update \\(status, [^)]*\\)\\s+on services to "${dba}";`));
    assert.doesNotMatch(print.stdout, /:"(runtime|admin)_role"/, "every placeholder substituted");
    await roles.admin(print.stdout, [], database);
    const normalise = (lines: string[], role: string) => lines.map((line) => line.replaceAll(role, "ROLE"));
    assert.deepEqual(normalise(await rightsOf(ownerPool, dba), dba), normalise(await rightsOf(ownerPool, runtime), runtime));
    assert.deepEqual(normalise(await rightsOf(ownerPool, dbadm), dbadm), normalise(await rightsOf(ownerPool, admin), admin));
    assert.ok((await rightsOf(ownerPool, runtime)).includes("column services.pid: UPDATE"));
    assert.ok(!(await rightsOf(ownerPool, runtime)).some((line) => /^(table services: (INSERT|UPDATE)|column services\.(command|args|env|cwd|port|host|desired_status): UPDATE)$/.test(line)));

    const runtimeOnly = await runCliProcess(["migrate", "--print-grants", dba], offline);
    assert.match(runtimeOnly.stdout, /-- The admin role's rights \(services add, enable, disable, stop\): add --admin-role ROLE to print them\./);
    assert.doesNotMatch(runtimeOnly.stdout, /-- sql\/grants\/platform_admin\.sql\n/);
  });

  it("one role is never both: migrate refuses the runtime role as the admin role, and the other way round", async () => {
    const both = await cli(owner, "migrate", "--runtime-role", runtime, "--admin-role", runtime);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /cannot be both the runtime role and the admin role/);
    const asAdmin = await cli(owner, "migrate", "--admin-role", runtime);
    assert.equal(asAdmin.code, 2);
    assert.match(asAdmin.stderr, new RegExp(`role '${runtime}' is already the runtime role; the runtime role and the admin role must be two roles`));
    const asRuntime = await cli(owner, "migrate", "--runtime-role", admin);
    assert.equal(asRuntime.code, 2);
    assert.match(asRuntime.stderr, new RegExp(`role '${admin}' is already the admin role`));
  });

  it("a runtime role granted the whole table by an older version loses the desired state at the next migrate", async () => {
    await ownerPool.query(`grant select, insert, update, delete on services to "${runtime}"`);
    assert.equal(await failureOf("insert into services (name, host, command, port) values ('intruder', 'elsewhere', '/bin/sh', 40004)"), null);
    await ownerPool.query("delete from services where name = 'intruder'");
    const result = await cli(owner, "migrate");
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`granted runtime role: ${runtime}\ngranted admin role: ${admin}`), "both remembered");
    assert.equal(await failureOf("insert into services (name, host, command, port) values ('intruder', 'elsewhere', '/bin/sh', 40004)"), "42501");
    assert.equal(await failureOf("update services set command = '/bin/sh'"), "42501");
    assert.equal(await failureOf("update services set last_error = null"), null);
  });
});
