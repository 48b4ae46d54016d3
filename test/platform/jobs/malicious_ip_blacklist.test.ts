import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import { maliciousIpBlacklist } from "../../../src/platform/jobs/malicious_ip_blacklist/index.ts";
import { sessionScansInPlan } from "../../helpers/blacklist-plan.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { runJobLogic, runThroughWorker } from "../../helpers/jobs.ts";

const db = useTestDatabase();

interface Sessions {
  ip: string | null;
  count: number;
  hoursAgo?: number;
  bot?: boolean;
  scanner?: boolean;
  country?: string | null;
}

let batch = 0;

async function reset(): Promise<void> {
  await db.pool.query("truncate user_sessions, banned_ips, scheduler.ban_offences");
}

async function seed(groups: Sessions[]): Promise<void> {
  for (const g of groups) {
    batch += 1;
    await db.pool.query(
      `insert into user_sessions (session_id, started_at, last_activity_at, ip_address, country, is_bot, is_scanner)
       select 's' || $1 || '-' || i, now() - make_interval(secs => $3::float8 * 3600), now(), $2, $6, $4, $5
       from generate_series(1, $7) i`,
      [batch, g.ip, g.hoursAgo ?? 1, g.bot ?? false, g.scanner ?? false, g.country ?? null, g.count],
    );
  }
}

async function banned(): Promise<{ ip_address: string; reason: string; days: number; ban_count: number; ban_source: string }[]> {
  const { rows } = await db.pool.query(
    `select ip_address, reason, ban_source, ban_count, round(extract(epoch from expires_at - banned_at) / 86400)::int as days
     from banned_ips order by ip_address`,
  );
  return rows;
}

const ips = async () => (await banned()).map((b) => b.ip_address);

describe("malicious_ip_blacklist rules", () => {
  beforeEach(reset);

  it("high volume: 100 non-bot sessions in 24 h, bots not counted", async () => {
    await seed([
      { ip: "203.0.113.1", count: 99 },
      { ip: "203.0.113.2", count: 100 },
      { ip: "203.0.113.3", count: 99 },
      { ip: "203.0.113.3", count: 50, bot: true },
    ]);
    await runJobLogic(db.pool, maliciousIpBlacklist);
    assert.deepEqual(await banned(), [{ ip_address: "203.0.113.2", reason: "Automated: high request volume", ban_source: "malicious_ip_blacklist", ban_count: 1, days: 14 }]);
  });

  it("scanner: 3 scanner sessions", async () => {
    await seed([
      { ip: "203.0.113.4", count: 2, scanner: true },
      { ip: "203.0.113.5", count: 3, scanner: true },
    ]);
    await runJobLogic(db.pool, maliciousIpBlacklist);
    assert.deepEqual((await banned()).map((b) => [b.ip_address, b.reason]), [["203.0.113.5", "Automated: scanner activity detected"]]);
  });

  it("datacenter: any session from a listed range, IPv4 and IPv6, table and payload", async () => {
    await db.pool.query("insert into scheduler.datacenter_ranges (cidr, provider) values ('2001:db8:dc::/48', 'test cloud')");
    try {
      await seed([
        { ip: "47.79.200.1", count: 1 },
        { ip: "47.80.0.1", count: 1 },
        { ip: "47.82.0.9", count: 1, bot: true },
        { ip: "2001:db8:dc:1::5", count: 1 },
        { ip: "2001:db8:dd::5", count: 1 },
        { ip: "192.0.2.77", count: 1 },
      ]);
      const result = await runJobLogic(db.pool, maliciousIpBlacklist, { rules: { datacenter: { extraRanges: ["192.0.2.0/25"] } } });
      assert.deepEqual(await ips(), ["192.0.2.77", "2001:db8:dc:1::5", "47.79.200.1", "47.82.0.9"]);
      assert.equal((await banned())[0]!.reason, "Automated: known datacenter IP range");
      assert.equal((result.details?.ruleMatches as Record<string, number>).datacenter, 4);
    } finally {
      await db.pool.query("delete from scheduler.datacenter_ranges where cidr = '2001:db8:dc::/48'");
    }
  });

  it("high-risk country: 5 sessions from a listed country; the list is editable", async () => {
    await seed([
      { ip: "203.0.113.6", count: 4, country: "RU" },
      { ip: "203.0.113.7", count: 5, country: "ru" },
      { ip: "203.0.113.8", count: 10, country: "DE" },
      { ip: "203.0.113.9", count: 3, country: "BR" },
      { ip: "203.0.113.9", count: 2, country: "VN" },
    ]);
    const defaults = await runJobLogic(db.pool, maliciousIpBlacklist, { enforce: false });
    assert.deepEqual((defaults.details?.findings as { ip: string }[]).map((f) => f.ip).sort(), ["203.0.113.7", "203.0.113.9"]);
    const dry = await runJobLogic(db.pool, maliciousIpBlacklist, { enforce: false, rules: { highRiskCountry: { extraCountries: ["de"] } } });
    assert.deepEqual((dry.details?.findings as { ip: string }[]).map((f) => f.ip).sort(), ["203.0.113.7", "203.0.113.8", "203.0.113.9"]);

    await db.pool.query("delete from scheduler.high_risk_countries where country_code = 'VN'");
    try {
      await runJobLogic(db.pool, maliciousIpBlacklist);
      assert.deepEqual(await ips(), ["203.0.113.7"]);
      assert.equal((await banned())[0]!.reason, "Automated: high-risk country pattern");
    } finally {
      await db.pool.query("insert into scheduler.high_risk_countries (country_code) values ('VN')");
    }
  });

  it("names the first matching rule and lists all of them", async () => {
    await seed([
      { ip: "47.79.0.1", count: 100, country: "RU" },
      { ip: "47.79.0.1", count: 3, scanner: true, bot: true },
      { ip: "47.79.0.2", count: 3, scanner: true, country: "RU" },
      { ip: "47.79.0.2", count: 2, country: "RU" },
    ]);
    const dry = await runJobLogic(db.pool, maliciousIpBlacklist, { enforce: false });
    const findings = dry.details?.findings as { ip: string; rule: string; rules: string[]; evidence: number }[];
    assert.deepEqual(
      findings.map((f) => [f.ip, f.rule, f.rules, f.evidence]),
      [
        ["47.79.0.1", "high_volume", ["high_volume", "scanner", "datacenter", "high_risk_country"], 100],
        ["47.79.0.2", "scanner", ["scanner", "datacenter", "high_risk_country"], 3],
      ],
    );
    await runJobLogic(db.pool, maliciousIpBlacklist);
    assert.deepEqual((await banned()).map((b) => b.reason), ["Automated: high request volume", "Automated: scanner activity detected"]);
  });

  it("counts only sessions started in the window (windowHours, default 24)", async () => {
    await seed([
      { ip: "203.0.113.10", count: 2, scanner: true, hoursAgo: 23.9 },
      { ip: "203.0.113.10", count: 5, scanner: true, hoursAgo: 24.1 },
    ]);
    await runJobLogic(db.pool, maliciousIpBlacklist);
    assert.deepEqual(await ips(), []);
    await runJobLogic(db.pool, maliciousIpBlacklist, { windowHours: 25 });
    assert.deepEqual(await ips(), ["203.0.113.10"]);
  });

  it("switches rules off and overrides thresholds", async () => {
    await seed([
      { ip: "203.0.113.11", count: 100 },
      { ip: "203.0.113.12", count: 1, scanner: true },
      { ip: "47.79.0.3", count: 1 },
    ]);
    await runJobLogic(db.pool, maliciousIpBlacklist, {
      rules: { highVolume: { enabled: false }, scanner: { minSessions: 1 }, datacenter: { minSessions: 2 } },
    });
    assert.deepEqual(await ips(), ["203.0.113.12"]);
  });
});

describe("malicious_ip_blacklist data quality", () => {
  beforeEach(reset);

  it("skips invalid IP text, counts it in itemsFailed and still bans the rest", async () => {
    await seed([
      { ip: "unknown", count: 200 },
      { ip: "999.1.1.1", count: 3, scanner: true },
      { ip: "", count: 1 },
      { ip: "10.0.0.0/8", count: 1 },
      { ip: null, count: 4 },
      { ip: "203.0.113.13", count: 3, scanner: true },
    ]);
    const result = await runJobLogic(db.pool, maliciousIpBlacklist);
    assert.deepEqual(await ips(), ["203.0.113.13"]);
    assert.equal(result.itemsFailed, 200 + 3 + 1 + 1);
    assert.equal(result.itemsProcessed, 1);
    assert.deepEqual(result.details?.invalidIpSamples, ["unknown", "999.1.1.1", "", "10.0.0.0/8"]);
  });

  it("merges textual variants of one address before the thresholds", async () => {
    await seed([
      { ip: "2001:DB8::7", count: 60 },
      { ip: "2001:db8:0::7", count: 40 },
      { ip: "::ffff:198.51.100.9", count: 2, scanner: true },
      { ip: " 198.51.100.9", count: 1, scanner: true },
    ]);
    await runJobLogic(db.pool, maliciousIpBlacklist);
    assert.deepEqual(await ips(), ["198.51.100.9", "2001:db8::7"]);
  });
});

describe("malicious_ip_blacklist ban policy", () => {
  beforeEach(reset);

  it("does not ban again while a ban is active; escalates a repeat offender after expiry", async () => {
    await seed([{ ip: "203.0.113.14", count: 3, scanner: true }]);
    await runJobLogic(db.pool, maliciousIpBlacklist);
    const second = await runJobLogic(db.pool, maliciousIpBlacklist);
    assert.equal(second.itemsProcessed, 0);
    assert.equal((second.details?.bans as Record<string, number>).skipped_active, 1);
    assert.equal((await banned())[0]!.ban_count, 1);

    await db.pool.query("update banned_ips set expires_at = now() - interval '1 second'");
    const third = await runJobLogic(db.pool, maliciousIpBlacklist);
    assert.equal(third.details?.escalated, 1);
    assert.deepEqual((await banned()).map((b) => [b.ban_count, b.days]), [[2, 28]]);

    // expired and cleaned up: the offence history still escalates the next ban
    await db.pool.query("update banned_ips set expires_at = now() - interval '1 second'");
    await runJobLogic(db.pool, maliciousIpBlacklist, { rules: { scanner: { enabled: false } } });
    assert.deepEqual(await banned(), []);
    await runJobLogic(db.pool, maliciousIpBlacklist);
    assert.deepEqual((await banned()).map((b) => [b.ban_count, b.days]), [[3, 56]]);
  });

  it("keeps permanent bans and never bans allowlisted addresses", async () => {
    await db.pool.query("insert into banned_ips (ip_address, reason, is_permanent, expires_at) values ('203.0.113.15', 'by hand', true, null)");
    await db.pool.query("insert into scheduler.ip_allowlist (cidr, note) values ('2001:db8:a11::/48', 'partner')");
    try {
      await seed([
        { ip: "203.0.113.15", count: 3, scanner: true },
        { ip: "10.1.2.3", count: 500 },
        { ip: "fe80::1", count: 500 },
        { ip: "127.0.0.1", count: 500 },
        { ip: "2001:db8:a11::9", count: 500 },
        { ip: "198.51.100.200", count: 500 },
      ]);
      const result = await runJobLogic(db.pool, maliciousIpBlacklist, { ban: { extraAllowlist: ["198.51.100.128/25"] } });
      const { rows } = await db.pool.query("select ip_address, reason, is_permanent, expires_at from banned_ips");
      assert.deepEqual(rows, [{ ip_address: "203.0.113.15", reason: "by hand", is_permanent: true, expires_at: null }]);
      const outcomes = result.details?.bans as Record<string, number>;
      assert.equal(outcomes.skipped_permanent, 1);
      assert.equal(outcomes.skipped_allowlisted, 5);
    } finally {
      await db.pool.query("truncate scheduler.ip_allowlist");
    }
  });

  it("dry run reports findings and would-be bans and changes nothing", async () => {
    await seed([
      { ip: "203.0.113.16", count: 3, scanner: true },
      { ip: "203.0.113.17", count: 120 },
    ]);
    await db.pool.query("insert into banned_ips (ip_address, expires_at) values ('203.0.113.18', now() - interval '1 day')");
    const before = (await db.pool.query("select * from banned_ips")).rows;
    // The direct insert is itself an offence (recorded by the trigger of sql/008); the dry run adds none.
    const offencesBefore = (await db.pool.query("select * from scheduler.ban_offences")).rows;
    assert.deepEqual(offencesBefore.map((o) => [o.ip_address, o.offences]), [["203.0.113.18", 1]]);
    const result = await runJobLogic(db.pool, maliciousIpBlacklist, { enforce: false });
    assert.deepEqual((await db.pool.query("select * from banned_ips")).rows, before);
    assert.deepEqual((await db.pool.query("select * from scheduler.ban_offences")).rows, offencesBefore);
    assert.equal(result.itemsProcessed, 2);
    assert.equal(result.details?.expiredBansToRemove, 1);
    assert.deepEqual(
      (result.details?.findings as { ip: string; rule: string; evidence: number }[]).map((f) => [f.ip, f.rule, f.evidence]),
      [
        ["203.0.113.17", "high_volume", 120],
        ["203.0.113.16", "scanner", 3],
      ],
    );
  });
});

describe("malicious_ip_blacklist plan and worker", () => {
  beforeEach(reset);

  it("reads user_sessions once", async () => {
    await seed([{ ip: "203.0.113.19", count: 10 }]);
    await db.pool.query("analyze user_sessions");
    assert.equal(await sessionScansInPlan(db.pool), 1);
  });

  it("runs through graphile-worker, and fails a bad payload permanently naming the field", async () => {
    await seed([{ ip: "203.0.113.20", count: 3, scanner: true }]);
    await runThroughWorker(db.pool, [maliciousIpBlacklist], [
      { task: "malicious_ip_blacklist" },
      { task: "malicious_ip_blacklist", payload: { rules: { datacenter: { extraRanges: ["47.79.0.0/8"] } } } },
    ]);
    const { rows } = await db.pool.query("select status, items_processed, error from scheduler.job_runs where task = 'malicious_ip_blacklist' order by id");
    assert.equal(rows[0].status, "success");
    assert.equal(Number(rows[0].items_processed), 1);
    assert.equal(rows[1].status, "failed");
    assert.match(rows[1].error, /extraRanges/);
    assert.match(rows[1].error, /47\.0\.0\.0\/8/, "the error suggests the network address");
  });
});
