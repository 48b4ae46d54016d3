import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import { behavioralAnalysis } from "../../../src/platform/jobs/behavioral_analysis/index.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { fingerprintState, resetFingerprints, seedFingerprints, type Fingerprint } from "../../helpers/fingerprints.ts";
import { runJobLogic } from "../../helpers/jobs.ts";

// behavioral_analysis's bans (the rules themselves: test/jobs/behavioral_analysis.test.ts).

const db = useTestDatabase();

const reset = () => resetFingerprints(db.pool);
const seed = (fingerprints: Fingerprint[]) => seedFingerprints(db.pool, fingerprints);
const state = (hash: string) => fingerprintState(db.pool, hash);

async function bans(): Promise<{ ip_address: string; reason: string; ban_source: string; source_fingerprint: string | null; ban_count: number; days: number }[]> {
  const { rows } = await db.pool.query(
    `select ip_address, reason, ban_source, source_fingerprint, ban_count,
            round(extract(epoch from expires_at - banned_at) / 86400)::int as days
     from banned_ips order by ip_address`,
  );
  return rows;
}

describe("behavioral_analysis bans", () => {
  beforeEach(reset);

  it("bans the IP of an analysed fingerprint with 3 incidents (this run's included), for 7 days", async () => {
    await seed([
      { hash: "third", requests: 101, incidents: 2, ip: "203.0.113.10" },
      { hash: "second", requests: 101, incidents: 1, ip: "203.0.113.11" },
      { hash: "no-ip", requests: 101, incidents: 5, ip: null },
      { hash: "quiet-repeat", incidents: 3, ip: "203.0.113.12" },
      { hash: "quiet", incidents: 2, ip: "203.0.113.13" },
      { hash: "not-seen", requests: 101, incidents: 9, ip: "203.0.113.14", seenMinutesAgo: 120 },
    ]);
    const result = await runJobLogic(db.pool, behavioralAnalysis);
    const reason = "Automated: repeated behavioral violations";
    assert.deepEqual(await bans(), [
      { ip_address: "203.0.113.10", reason, ban_source: "behavioral_analysis", source_fingerprint: "third", ban_count: 1, days: 7 },
      { ip_address: "203.0.113.12", reason, ban_source: "behavioral_analysis", source_fingerprint: "quiet-repeat", ban_count: 1, days: 7 },
    ]);
    assert.equal(result.itemsProcessed, 3 + 2, "three flagged fingerprints and two bans");
    assert.equal((result.details?.bans as Record<string, number>).created, 2);
    assert.equal((await state("quiet-repeat")).abuse_incidents, 3, "no rule matched: no new incident");
  });

  it("bans a shared IP once, naming the fingerprint with the most incidents", async () => {
    await seed([
      { hash: "a", requests: 101, incidents: 2, ip: "198.51.100.20" },
      { hash: "b", requests: 101, incidents: 6, ip: "198.51.100.20" },
    ]);
    await runJobLogic(db.pool, behavioralAnalysis);
    const rows = await bans();
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.source_fingerprint, "b");
  });

  it("never bans allowlisted addresses, and counts invalid IP text as failed", async () => {
    await db.pool.query("insert into scheduler.ip_allowlist (cidr, note) values ('203.0.113.0/24', 'office')");
    try {
      await seed([
        { hash: "private", requests: 101, incidents: 4, ip: "192.168.1.5" },
        { hash: "loopback6", requests: 101, incidents: 4, ip: "::1" },
        { hash: "office", requests: 101, incidents: 4, ip: "203.0.113.99" },
        { hash: "payload", requests: 101, incidents: 4, ip: "198.51.100.1" },
        { hash: "garbage", requests: 101, incidents: 4, ip: "not-an-ip" },
        { hash: "public6", requests: 101, incidents: 4, ip: "2001:DB8:0:0::5" },
      ]);
      const result = await runJobLogic(db.pool, behavioralAnalysis, { ban: { extraAllowlist: ["198.51.100.0/24"] } });
      assert.deepEqual((await bans()).map((b) => b.ip_address), ["2001:db8::5"]);
      assert.equal(result.itemsFailed, 1);
      assert.equal((result.details?.bans as Record<string, number>).skipped_allowlisted, 4);
      assert.equal((await state("garbage")).abuse_incidents, 5, "the fingerprint is still flagged");
    } finally {
      await db.pool.query("truncate scheduler.ip_allowlist");
    }
  });

  it("does not ban an IP again while its ban is active", async () => {
    await seed([{ hash: "repeat", requests: 101, incidents: 3, ip: "203.0.113.30" }]);
    await runJobLogic(db.pool, behavioralAnalysis);
    await db.pool.query("update fingerprint_reputation set last_seen_at = now()");
    const second = await runJobLogic(db.pool, behavioralAnalysis);
    assert.equal((second.details?.bans as Record<string, number>).skipped_active, 1);
    assert.equal((await bans())[0]!.ban_count, 1);
  });

  it("honours ban.enabled, ban.minIncidents and ban.days", async () => {
    await seed([{ hash: "x", requests: 101, incidents: 0, ip: "203.0.113.40" }]);
    await runJobLogic(db.pool, behavioralAnalysis, { ban: { enabled: false, minIncidents: 1 } });
    assert.equal((await bans()).length, 0);
    await db.pool.query("update fingerprint_reputation set last_seen_at = now()");
    await runJobLogic(db.pool, behavioralAnalysis, { ban: { minIncidents: 2, days: 2 } });
    assert.deepEqual((await bans()).map((b) => [b.ip_address, b.days]), [["203.0.113.40", 2]]);
  });

  it("ends by deleting expired, non-permanent bans", async () => {
    await db.pool.query(`insert into banned_ips (ip_address, expires_at, is_permanent) values
      ('203.0.113.1', now() - interval '1 minute', false),
      ('203.0.113.2', now() - interval '1 minute', true),
      ('203.0.113.3', now() + interval '1 day', false),
      ('203.0.113.4', null, false)`);
    const result = await runJobLogic(db.pool, behavioralAnalysis, { cleanupBatchSize: 1 });
    assert.equal(result.details?.expiredBansRemoved, 1);
    const { rows } = await db.pool.query("select ip_address from banned_ips order by 1");
    assert.deepEqual(rows.map((r) => r.ip_address), ["203.0.113.2", "203.0.113.3", "203.0.113.4"]);
  });
});
