import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import { bansCommand, banCommand, unbanCommand } from "../../../src/cli/commands/bans.ts";
import type { CliContext, Command } from "../../../src/cli/command.ts";
import { loadConfig } from "../../../src/config.ts";
import { SchedulerError } from "../../../src/engine/errors.ts";
import { removeExpiredBans } from "../../../src/platform/security/bans.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";

const db = useTestDatabase();

interface Outcome {
  ip_address: string;
  outcome: string;
  ban_count: number | null;
  repeat_offences: number;
  days: number | null;
  is_permanent: boolean;
}

/** The policy as the jobs call it: base duration, escalation on. */
async function autoBan(ips: string[], options: { days?: number; allow?: string[]; dryRun?: boolean } = {}): Promise<Outcome[]> {
  const { rows } = await db.pool.query<Outcome>(
    `select ip_address, outcome, ban_count, repeat_offences, is_permanent,
            round(extract(epoch from expires_at - now()) / 86400)::int as days
     from scheduler.ban_ips($1, array_fill('test reason'::text, array[cardinality($1::text[])]), 'test', make_interval(days => $2),
                            p_extra_allowlist => $3::cidr[], p_dry_run => $4)`,
    [ips, options.days ?? 7, options.allow ?? [], options.dryRun ?? false],
  );
  return rows;
}

const expireAll = () => db.pool.query("update banned_ips set expires_at = now() - interval '1 second' where not is_permanent");

describe("ban policy (scheduler.ban_ips)", () => {
  beforeEach(async () => {
    await db.pool.query("truncate banned_ips, scheduler.ban_offences, scheduler.ip_allowlist");
    await db.pool.query("update scheduler.ban_policy set max_ban = '90 days', forget_after = '180 days'");
  });

  it("doubles the duration per previous ban, capped at ban_policy.max_ban", async () => {
    const days: number[] = [];
    const counts: number[] = [];
    for (let i = 0; i < 6; i++) {
      const [row] = await autoBan(["203.0.113.1"]);
      assert.equal(row!.outcome, i === 0 ? "created" : "renewed");
      days.push(row!.days!);
      counts.push(row!.ban_count!);
      await expireAll();
    }
    assert.deepEqual(days, [7, 14, 28, 56, 90, 90]);
    assert.deepEqual(counts, [1, 2, 3, 4, 5, 6]);

    await db.pool.query("update scheduler.ban_policy set max_ban = '20 days'");
    assert.equal((await autoBan(["203.0.113.1"]))[0]!.days, 20);
  });

  it("remembers offences after the expired row is deleted, and forgets them after forget_after", async () => {
    await autoBan(["203.0.113.2"]);
    await expireAll();
    assert.equal(await removeExpiredBans(db.pool, { enforce: true, batchSize: 10 }), 1);
    assert.deepEqual((await autoBan(["203.0.113.2"])).map((r) => [r.outcome, r.days, r.ban_count]), [["created", 14, 2]]);

    await expireAll();
    await removeExpiredBans(db.pool, { enforce: true, batchSize: 10 });
    await db.pool.query("update scheduler.ban_offences set last_banned_at = now() - interval '181 days'");
    assert.deepEqual((await autoBan(["203.0.113.2"])).map((r) => [r.days, r.ban_count]), [[7, 1]]);
  });

  it("escalates an address whose expired ban was inserted directly in SQL, exactly as one the policy made", async () => {
    // The reference: a ban made by the policy, expired and cleaned up.
    await autoBan(["203.0.113.20"]);
    // The case under test: the platform (or an operator) inserts the ban itself.
    await db.pool.query("insert into banned_ips (ip_address, reason, expires_at, ban_source) values ('203.0.113.21', 'platform rate limit', now() + interval '1 hour', 'platform')");
    await expireAll();
    assert.equal(await removeExpiredBans(db.pool, { enforce: true, batchSize: 10 }), 2);

    const again = await autoBan(["203.0.113.20", "203.0.113.21"]);
    assert.deepEqual(again.map((r) => [r.ip_address, r.outcome, r.days, r.ban_count, r.repeat_offences]), [
      ["203.0.113.20", "created", 14, 2, 1],
      ["203.0.113.21", "created", 14, 2, 1],
    ]);
  });

  it("remembers a ban the platform inserted and deleted itself, or renewed in place", async () => {
    // Inserted and deleted by the platform: our cleanup never saw it.
    await db.pool.query("insert into banned_ips (ip_address, expires_at, ban_source) values ('203.0.113.22', now() + interval '1 day', 'platform')");
    await db.pool.query("delete from banned_ips where ip_address = '203.0.113.22'");
    // Renewed in place by the platform: an expired row made active again, twice.
    await db.pool.query("insert into banned_ips (ip_address, expires_at, ban_source) values ('203.0.113.23', now() - interval '1 minute', 'platform')");
    await db.pool.query("update banned_ips set banned_at = now(), expires_at = now() + interval '1 day' where ip_address = '203.0.113.23'");
    await expireAll();
    await db.pool.query("update banned_ips set expires_at = now() + interval '1 day' where ip_address = '203.0.113.23'");
    await db.pool.query("delete from banned_ips");

    const { rows } = await db.pool.query("select ip_address, offences from scheduler.ban_offences order by 1");
    assert.deepEqual(rows, [{ ip_address: "203.0.113.22", offences: 1 }, { ip_address: "203.0.113.23", offences: 3 }]);
    assert.deepEqual((await autoBan(["203.0.113.22", "203.0.113.23"])).map((r) => [r.days, r.ban_count]), [[14, 2], [56, 4]]);
  });

  it("records the offence of a platform role that has no right on the scheduler schema", async () => {
    const client = await db.pool.connect();
    try {
      // In one transaction that is rolled back, so the role never outlives the test.
      await client.query("begin");
      await client.query("create role sps_test_platform nologin");
      await client.query("grant select, insert, update, delete on banned_ips to sps_test_platform");
      await client.query("set local role sps_test_platform");
      await client.query("insert into banned_ips (ip_address, expires_at) values ('203.0.113.25', now() + interval '1 day')");
      await client.query("reset role");
      const { rows } = await client.query("select offences from scheduler.ban_offences where ip_address = '203.0.113.25'");
      assert.deepEqual(rows, [{ offences: 1 }]);
    } finally {
      await client.query("rollback");
      client.release();
    }
  });

  it("counts each policy ban once, and a lengthened or permanent-made ban not at all", async () => {
    const offences = async () => (await db.pool.query("select offences from scheduler.ban_offences where ip_address = '203.0.113.24'")).rows[0]?.offences;
    await autoBan(["203.0.113.24"]);
    assert.equal(await offences(), 1);
    await expireAll();
    await autoBan(["203.0.113.24"]);
    assert.equal(await offences(), 2);
    await db.pool.query("select * from scheduler.ban_ip('203.0.113.24', 'longer', interval '400 days')");
    await db.pool.query("select * from scheduler.ban_ip('203.0.113.24', 'forever', null, true)");
    assert.equal(await offences(), 2);
  });

  it("does not ban again under an active ban, and never touches a permanent one", async () => {
    await autoBan(["203.0.113.3"]);
    const again = await autoBan(["203.0.113.3"], { days: 30 });
    assert.deepEqual(again.map((r) => [r.outcome, r.ban_count, r.days]), [["skipped_active", 1, 7]]);

    await db.pool.query("insert into banned_ips (ip_address, is_permanent, expires_at, reason) values ('203.0.113.4', true, now() - interval '1 day', 'kept')");
    const permanent = await autoBan(["203.0.113.4"]);
    assert.equal(permanent[0]!.outcome, "skipped_permanent");
    const { rows } = await db.pool.query("select is_permanent, reason, ban_count from banned_ips where ip_address = '203.0.113.4'");
    assert.deepEqual(rows[0], { is_permanent: true, reason: "kept", ban_count: 1 });
    assert.equal(await removeExpiredBans(db.pool, { enforce: true, batchSize: 10 }), 0, "a permanent ban is never cleaned up");
  });

  it("never bans reserved or allowlisted addresses (IPv4 and IPv6)", async () => {
    await db.pool.query("insert into scheduler.ip_allowlist (cidr) values ('198.51.100.0/24'), ('2001:db8:1::/48')");
    const reserved = ["127.0.0.1", "10.9.8.7", "172.31.255.1", "192.168.0.1", "169.254.1.1", "100.64.0.1", "::1", "fe80::abcd", "fd00::1", "::ffff:10.0.0.1"];
    const rows = await autoBan([...reserved, "198.51.100.7", "2001:db8:1::7", "192.0.2.1", "172.32.0.1"], { allow: ["192.0.2.0/24"] });
    assert.deepEqual(
      rows.filter((r) => r.outcome !== "skipped_allowlisted").map((r) => r.ip_address),
      ["172.32.0.1"],
      "only the address just outside 172.16.0.0/12 is banned",
    );
    assert.equal(rows.length, reserved.length + 4);
  });

  it("reports invalid text, de-duplicates, and stores the canonical address", async () => {
    const rows = await autoBan(["bogus", "2001:DB8:0:0:0:0:0:9", "2001:db8::9", "::ffff:192.0.2.9", "", "1.2.3.4/24"]);
    assert.deepEqual(
      rows.map((r) => [r.ip_address, r.outcome]),
      [
        ["bogus", "invalid"],
        ["2001:db8::9", "created"],
        ["192.0.2.9", "created"],
        ["", "invalid"],
        ["1.2.3.4/24", "invalid"],
      ],
    );
    const { rows: stored } = await db.pool.query("select ip_address from banned_ips order by 1");
    assert.deepEqual(stored.map((r) => r.ip_address), ["192.0.2.9", "2001:db8::9"]);
  });

  it("dry run decides the same and writes nothing", async () => {
    await autoBan(["203.0.113.5"]);
    await expireAll();
    const dry = await autoBan(["203.0.113.5", "203.0.113.6"], { dryRun: true });
    assert.deepEqual(dry.map((r) => [r.outcome, r.days, r.ban_count]), [["renewed", 14, 2], ["created", 7, 1]]);
    const { rows } = await db.pool.query("select ip_address, ban_count from banned_ips");
    assert.deepEqual(rows, [{ ip_address: "203.0.113.5", ban_count: 1 }]);
  });

  it("two concurrent bans of one address make one ban", async () => {
    const first = await db.pool.connect();
    const second = await db.pool.connect();
    try {
      await first.query("begin");
      await first.query("select * from scheduler.ban_ips(array['203.0.113.7'], array['a'], 'one', interval '7 days')");
      const secondPid = (await second.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]!.pid;
      const racing = second.query<{ outcome: string }>("select outcome from scheduler.ban_ips(array['203.0.113.7'], array['b'], 'two', interval '7 days')");
      // The second ban waits for the first (a fixed pause could end before it even got there).
      for (;;) {
        const { rows } = await db.pool.query("select 1 from pg_stat_activity where pid = $1 and wait_event_type = 'Lock'", [secondPid]);
        if (rows.length > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await first.query("commit");
      assert.equal((await racing).rows[0]!.outcome, "skipped_active");
    } finally {
      first.release();
      second.release();
    }
    const { rows } = await db.pool.query("select ban_source, ban_count from banned_ips");
    assert.deepEqual(rows, [{ ban_source: "one", ban_count: 1 }]);
    const offences = await db.pool.query("select offences from scheduler.ban_offences");
    assert.deepEqual(offences.rows, [{ offences: 1 }]);
  });

  it("cleans up expired bans in bounded batches, and only counts them in a dry run", async () => {
    await db.pool.query(`insert into banned_ips (ip_address, expires_at)
      select '198.18.0.' || i, now() - interval '1 minute' from generate_series(1, 7) i`);
    assert.equal(await removeExpiredBans(db.pool, { enforce: false, batchSize: 3 }), 7);
    assert.equal(await removeExpiredBans(db.pool, { enforce: true, batchSize: 3 }), 7);
    assert.equal((await db.pool.query("select count(*)::int as n from banned_ips")).rows[0].n, 0);
  });
});

function cli(): { ctx: CliContext; out: string[] } {
  const out: string[] = [];
  const ctx: CliContext = { config: loadConfig({}), logger: testLogger, pool: async () => db.pool, print: (text) => out.push(text) };
  return { ctx, out };
}

async function run(command: Command, positionals: string[], values: Record<string, string | boolean> = {}) {
  const { ctx, out } = cli();
  const code = await command.run(ctx, { positionals, values });
  return { code, out: out.join("\n") };
}

async function usageError(command: Command, positionals: string[], values: Record<string, string | boolean>, pattern: RegExp): Promise<void> {
  await assert.rejects(run(command, positionals, values), (error: unknown) => {
    assert.ok(error instanceof SchedulerError);
    assert.match(error.describe(), pattern);
    return true;
  });
}

describe("bans CLI", () => {
  beforeEach(() => db.pool.query("truncate banned_ips, scheduler.ban_offences, scheduler.ip_allowlist"));

  it("ban, list, unban", async () => {
    const banned = await run(banCommand, ["2001:DB8::42"], { reason: "abuse report", duration: "1d12h" });
    assert.equal(banned.code, 0);
    assert.match(banned.out, /banned 2001:db8::42 until .* \(ban #1\)/);
    const { rows } = await db.pool.query("select reason, ban_source, round(extract(epoch from expires_at - banned_at) / 3600)::int as hours from banned_ips");
    assert.deepEqual(rows, [{ reason: "abuse report", ban_source: "manual", hours: 36 }]);

    await run(banCommand, ["203.0.113.9"], { permanent: true });
    const list = await run(bansCommand.subcommands![0]!, [], { json: true });
    const parsed = JSON.parse(list.out) as { ip_address: string; is_permanent: boolean; active: boolean }[];
    assert.deepEqual(parsed.map((b) => [b.ip_address, b.is_permanent, b.active]).sort(), [["2001:db8::42", false, true], ["203.0.113.9", true, true]]);
    const table = await run(bansCommand.subcommands![0]!, [], { active: true });
    assert.match(table.out, /203\.0\.113\.9\s+active\s+permanent/);

    assert.match((await run(unbanCommand, ["2001:db8::42"])).out, /unbanned 2001:db8::42/);
    assert.match((await run(unbanCommand, ["2001:db8::42"])).out, /was not banned/);
  });

  it("lengthens an active ban and makes it permanent, but never shortens a permanent one", async () => {
    await run(banCommand, ["203.0.113.10"], { duration: "1h" });
    assert.match((await run(banCommand, ["203.0.113.10"], { duration: "2d" })).out, /extended the ban/);
    assert.match((await run(banCommand, ["203.0.113.10"], { duration: "1h" })).out, /already banned until/);
    assert.match((await run(banCommand, ["203.0.113.10"], { permanent: true })).out, /now permanent/);
    assert.match((await run(banCommand, ["203.0.113.10"], { duration: "1h" })).out, /already banned permanently/);
  });

  it("refuses allowlisted addresses and rejects bad input with a clear message", async () => {
    await usageError(banCommand, ["192.168.1.1"], {}, /refused: 192\.168\.1\.1 is allowlisted \(reserved 192\.168\.0\.0\/16\)/);
    await usageError(banCommand, ["300.1.1.1"], {}, /'300\.1\.1\.1' is not an IPv4 or IPv6 address/);
    await usageError(banCommand, [], {}, /an IP address is required/);
    await usageError(banCommand, ["203.0.113.1"], { duration: "7 days" }, /not a duration: use a number and a unit/);
    await usageError(banCommand, ["203.0.113.1"], { duration: "0m" }, /longer than zero/);
    await usageError(banCommand, ["203.0.113.1"], { duration: "5000d" }, /longer than 3650 days/);
    await usageError(banCommand, ["203.0.113.1"], { duration: "1d", permanent: true }, /exclude each other/);
    await usageError(unbanCommand, ["not-an-ip"], {}, /not an IPv4 or IPv6 address/);
    assert.equal((await db.pool.query("select count(*)::int as n from banned_ips")).rows[0].n, 0);
  });
});
