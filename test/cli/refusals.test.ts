import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { runCliProcess } from "../helpers/cli.ts";
import { useTestDatabase } from "../helpers/db.ts";

// A node that cannot run is refused at once (exit 2, within 2 s) and leaves nothing behind:
// configuration, task files and the whole crontab (payloads against their job's schema
// included) are checked before any database is touched.

const db = useTestDatabase({ migrate: false });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-refusals-"));

async function startWith(crontab: string | null, env: Record<string, string> = {}) {
  const crontabPath = path.join(dir, `crontab-${Math.random().toString(36).slice(2)}`);
  if (crontab !== null) fs.writeFileSync(crontabPath, crontab);
  return runCliProcess(["start"], { DATABASE_URL: db.connectionString, SCHEDULER_CRONTAB: crontabPath, SCHEDULER_RECONCILE_SERVICES: "false", ...env }, 20_000);
}

async function untouched(): Promise<void> {
  const { rows } = await db.pool.query("select nspname from pg_namespace where nspname in ('scheduler', 'graphile_worker')");
  assert.deepEqual(rows, [], "the database was not migrated");
}

describe("start refuses what cannot run, before any database", () => {
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("reports every bad crontab line at once, with the parser's own JSON5 message and the entry's payload problem", async () => {
    const result = await startWith(
      [
        "# cut short",
        "0 4 * * 0 database_cleanup ?id=weekly_preview {enforce: false",
        "0 * * * * purge_audit_exports",
        "5 4 * * * database_cleanup ?id=short_retention {logRetentionDays: 'ten'}",
        "6 4 * * * database_cleanup ?id=typo {enforce: false, dryRun: true}",
        "7 4 * * * cleanup_inactive_sessions [1, 2]",
      ].join("\n"),
    );
    assert.equal(result.code, 2, result.stderr);
    assert.ok(result.ms < 2000, `refused in ${result.ms} ms`);
    assert.match(result.stderr, /crontab-\w+:2: Failed to parse JSON5 payload on line 2 of crontab: JSON5: invalid end of input at 1:16/);
    assert.match(result.stderr, /:3: task 'purge_audit_exports' has no task file/);
    assert.match(result.stderr, /:4: entry 'short_retention': invalid payload for job 'database_cleanup': field 'logRetentionDays'/);
    assert.match(result.stderr, /:5: entry 'typo': .*unknown field\(s\) 'dryRun'/);
    assert.match(result.stderr, /:6: Invalid command specification in line 6 of crontab: expected .* JSON5 object/);
    assert.doesNotMatch(result.stdout + result.stderr, /scheduler started/);
    await untouched();
  });

  it("refuses an unknown time zone, a bad overlap or jitter, naming file and line; and a bad SCHEDULER_TIMEZONE", async () => {
    const result = await startWith(
      [
        "0 9 * * * database_cleanup ?tz=Europe/Berln",
        "0 9 * * * database_cleanup ?id=b&overlap=sometimes",
        "0 9 * * * database_cleanup ?id=c&jitter=soon",
        "0 9 * * * database_cleanup ?id=d&tz=+02:00",
      ].join("\n"),
    );
    assert.equal(result.code, 2, result.stderr);
    assert.ok(result.ms < 2000, `refused in ${result.ms} ms`);
    assert.match(result.stderr, /crontab-\w+:1: \?tz=Europe\/Berln: unknown time zone 'Europe\/Berln'; use an IANA name/);
    assert.match(result.stderr, /:2: \?overlap=sometimes: expected one of queue_one, skip, allow/);
    assert.match(result.stderr, /:3: \?jitter=soon: expected a duration/);
    assert.match(result.stderr, /:4: \?tz=\+02:00: '\+02:00' is not an IANA time zone name/);
    const zone = await startWith("", { SCHEDULER_TIMEZONE: "Mars/Olympus_Mons" });
    assert.equal(zone.code, 2, zone.stderr);
    assert.match(zone.stderr, /SCHEDULER_TIMEZONE="Mars\/Olympus_Mons": unknown time zone/);
    await untouched();
  });

  it("refuses a missing crontab file at once", async () => {
    const result = await startWith(null);
    assert.equal(result.code, 2);
    assert.ok(result.ms < 2000, `refused in ${result.ms} ms`);
    assert.match(result.stderr, /cannot read crontab .*crontab-\w+/);
    await untouched();
  });

  it("refuses a bootstrap job that has no task, and bad configuration, at once", async () => {
    const bootstrap = await startWith("", { SCHEDULER_BOOTSTRAP_JOBS: "warm_cache" });
    assert.equal(bootstrap.code, 2);
    assert.match(bootstrap.stderr, /bootstrap job 'warm_cache' has no task/);
    const timing = await startWith("", { SCHEDULER_HEARTBEAT_MS: "20000" });
    assert.equal(timing.code, 2);
    assert.match(timing.stderr, /SCHEDULER_NODE_DEAD_AFTER_MS \(30000\) must be at least 3 × SCHEDULER_HEARTBEAT_MS/);
    assert.ok(bootstrap.ms < 2000 && timing.ms < 2000, `refused in ${bootstrap.ms} and ${timing.ms} ms`);
    await untouched();
  });

  it("refuses an allowlist of services that others can read or write, or that is malformed, at once", async () => {
    const file = path.join(dir, "allowed-commands");
    fs.writeFileSync(file, `${process.execPath}\n`, { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    const loose = await startWith("", { SCHEDULER_RECONCILE_SERVICES: "true", SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE: file });
    assert.equal(loose.code, 2, loose.stderr);
    assert.match(loose.stderr, /SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE: .*allowed-commands can be read by other users \(mode 644\); fix: chmod 600/);
    const relative = await startWith("", { SCHEDULER_RECONCILE_SERVICES: "true", SCHEDULER_SERVICES_ALLOWED_COMMANDS: "node" });
    assert.equal(relative.code, 2, relative.stderr);
    assert.match(relative.stderr, /SCHEDULER_SERVICES_ALLOWED_COMMANDS="node": item 1 'node' is not an absolute path/);
    assert.ok(loose.ms < 2000 && relative.ms < 2000, `refused in ${loose.ms} and ${relative.ms} ms`);
    await untouched();
  });

  it("says what it waits for while the database is unreachable", async () => {
    const result = await runCliProcess(["status"], { DATABASE_URL: "postgres://postgres@127.0.0.1:1/nowhere", LOG_LEVEL: "warn" }, 60_000);
    assert.equal(result.code, 1);
    // The first attempt, then every tenth (the reason stays the same): not once per attempt.
    assert.match(result.stderr, /waiting for PostgreSQL at 127\.0\.0\.1:1\/nowhere \(attempt 1\)/);
    assert.doesNotMatch(result.stderr, /\(attempt 2\)/);
    assert.ok(result.ms < 10_000, `gave up after ${result.ms} ms`);
  });
});
