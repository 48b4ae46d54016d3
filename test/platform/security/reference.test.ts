import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import { behavioralAnalysis } from "../../../src/platform/jobs/behavioral_analysis/index.ts";
import { maliciousIpBlacklist } from "../../../src/platform/jobs/malicious_ip_blacklist/index.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { runJobLogic } from "../../helpers/jobs.ts";

// Randomised data near every threshold, run through the jobs, compared with a plain
// reference implementation of the rules and the ban policy written out below.

const db = useTestDatabase();

function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = <T>(rand: () => number, items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;

/** Address texts with what the reference must know about them (no CIDR math in the reference). */
interface Address {
  text: string | null;
  canonical: string | null;
  reserved?: boolean;
  datacenter?: boolean;
}
const ADDRESSES: Address[] = [
  ...Array.from({ length: 12 }, (_, i) => ({ text: `203.0.113.${i + 1}`, canonical: `203.0.113.${i + 1}` })),
  { text: "2001:db8::a", canonical: "2001:db8::a" },
  { text: "2001:DB8:0::A", canonical: "2001:db8::a" },
  { text: "::ffff:198.51.100.3", canonical: "198.51.100.3" },
  { text: "198.51.100.3", canonical: "198.51.100.3" },
  { text: "47.79.10.1", canonical: "47.79.10.1", datacenter: true },
  { text: "47.82.255.7", canonical: "47.82.255.7", datacenter: true },
  { text: "47.81.0.1", canonical: "47.81.0.1" },
  { text: "10.20.30.40", canonical: "10.20.30.40", reserved: true },
  { text: "fe80::1", canonical: "fe80::1", reserved: true },
  { text: "127.0.0.1", canonical: "127.0.0.1", reserved: true },
  { text: "unknown", canonical: null },
  { text: "1.2.3.4.5", canonical: null },
  { text: null, canonical: null },
];
const canonicalOf = (text: string | null) => ADDRESSES.find((a) => a.text === text)!;
const BANNABLE = [...new Set(ADDRESSES.filter((a) => a.canonical && !a.reserved).map((a) => a.canonical!))];

type Existing = { ip: string; state: "active" | "expired" | "permanent"; banCount: number };

async function seedExistingBans(rand: () => number): Promise<Existing[]> {
  const existing = BANNABLE.filter(() => rand() < 0.3).map((ip) => ({ ip, state: pick(rand, ["active", "expired", "permanent"] as const), banCount: 1 + Math.floor(rand() * 3) }));
  for (const ban of existing) {
    await db.pool.query(
      `insert into banned_ips (ip_address, reason, banned_at, expires_at, is_permanent, ban_count) values
       ($1, 'earlier', now() - interval '10 days', case $2 when 'active' then now() + interval '2 days' when 'expired' then now() - interval '1 day' end, $2 = 'permanent', $3)`,
      [ban.ip, ban.state, ban.banCount],
    );
  }
  return existing;
}

interface ExpectedBan {
  ip_address: string;
  reason: string;
  ban_count: number;
  days: number | null;
  is_permanent: boolean;
  source_fingerprint: string | null;
  ban_source: string;
}

/** The ban policy, written out plainly: returns the banned_ips table after bans and cleanup. */
function referenceBans(existing: Existing[], candidates: { ip: string; fingerprint: string | null; reason: string }[], source: string, baseDays: number): ExpectedBan[] {
  const table = new Map<string, ExpectedBan & { expired: boolean }>();
  for (const e of existing) {
    table.set(e.ip, { ip_address: e.ip, reason: "earlier", ban_count: e.banCount, days: null, is_permanent: e.state === "permanent", source_fingerprint: null, ban_source: "manual", expired: e.state === "expired" });
  }
  for (const c of candidates) {
    const row = table.get(c.ip);
    if (row && (row.is_permanent || !row.expired)) continue;
    const prior = row ? row.ban_count : 0;
    const days = Math.min(baseDays * 2 ** prior, 90);
    table.set(c.ip, { ip_address: c.ip, reason: c.reason, ban_count: prior + 1, days, is_permanent: false, source_fingerprint: c.fingerprint, ban_source: source, expired: false });
  }
  return [...table.values()].filter((row) => !row.expired).map(({ expired: _expired, ...row }) => row);
}

async function actualBans(): Promise<ExpectedBan[]> {
  const { rows } = await db.pool.query<ExpectedBan>(
    `select ip_address, reason, ban_count, is_permanent, source_fingerprint, ban_source,
            case when ban_source = 'manual' then null else round(extract(epoch from expires_at - banned_at) / 86400)::int end as days
     from banned_ips`,
  );
  return rows;
}
const byIp = (a: { ip_address: string }, b: { ip_address: string }) => (a.ip_address < b.ip_address ? -1 : 1);

beforeEach(() => db.pool.query("truncate fingerprint_reputation, user_sessions, banned_ips, scheduler.ban_offences, scheduler.analysis_watermarks"));

describe("behavioral_analysis against a reference implementation", () => {
  for (const seed of [1, 2, 3, 4]) {
    it(`seed ${seed}`, async () => {
      const rand = random(seed);
      const rules = {
        requestCount: { enabled: rand() < 0.85, threshold: pick(rand, [100, 150]), penalty: pick(rand, [10, 35]) },
        sustainedVelocity: { enabled: rand() < 0.85, peakRequestsPerMinute: 10, minutes: 60, penalty: 15 },
        sessionCount: { enabled: rand() < 0.85, threshold: 10, penalty: pick(rand, [20, 60]) },
        lowReputation: { enabled: rand() < 0.85, threshold: pick(rand, [20, 30]) },
      };
      const ban = { minIncidents: pick(rand, [2, 3, 4]), days: 7 };
      const fingerprints = Array.from({ length: 300 }, (_, i) => ({
        hash: `fp${String(i).padStart(4, "0")}`,
        seen: pick(rand, [1, 10, 30, 58, 62, 90, 200]),
        requests: pick(rand, [0, 99, 100, 101, 149, 150, 151, 5000]),
        peak: pick(rand, [0, 9.5, 10, 10.5, 40]),
        sustained: pick(rand, [0, 59, 60, 61]),
        sessions: pick(rand, [1, 9, 10, 11, 40]),
        score: pick(rand, [-10, 0, 5, 19, 20, 21, 29, 30, 50, 100, 130]),
        flagged: rand() < 0.3,
        incidents: pick(rand, [0, 1, 2, 3, 5]),
        ip: pick(rand, ADDRESSES).text,
      }));
      await db.pool.query(
        `insert into fingerprint_reputation (fingerprint_hash, last_seen_at, total_request_count, peak_requests_per_minute,
           sustained_high_velocity_minutes, total_session_count, reputation_score, is_flagged, abuse_incidents, last_ip_address)
         select f->>'hash', now() - make_interval(mins => (f->>'seen')::int), (f->>'requests')::bigint, (f->>'peak')::real,
           (f->>'sustained')::int, (f->>'sessions')::int, (f->>'score')::int, (f->>'flagged')::boolean, (f->>'incidents')::int, f->>'ip'
         from jsonb_array_elements($1::jsonb) f`,
        [JSON.stringify(fingerprints)],
      );
      const existing = await seedExistingBans(rand);

      const result = await runJobLogic(db.pool, behavioralAnalysis, { rules, ban });

      // reference
      const reasons: [string, (f: (typeof fingerprints)[number]) => boolean, number][] = [
        ["request_count_exceeded_100", (f) => rules.requestCount.enabled && f.requests > rules.requestCount.threshold, rules.requestCount.penalty],
        ["sustained_velocity_10rpm_1hr", (f) => rules.sustainedVelocity.enabled && f.peak > 10 && f.sustained >= 60, 15],
        ["session_count_exceeded_10", (f) => rules.sessionCount.enabled && f.sessions > 10, rules.sessionCount.penalty],
        ["reputation_score_below_threshold", (f) => rules.lowReputation.enabled && f.score < rules.lowReputation.threshold && !f.flagged, 0],
      ];
      const expected = fingerprints.map((f) => {
        const hits = f.seen <= 60 ? reasons.filter(([, test]) => test(f)) : [];
        if (hits.length === 0) return { hash: f.hash, flagged: f.flagged, reason: null, score: f.score, incidents: f.incidents };
        const penalty = hits.reduce((sum, [, , p]) => sum + p, 0);
        return { hash: f.hash, flagged: true, reason: hits[0]![0], score: Math.min(100, Math.max(0, f.score - penalty)), incidents: f.incidents + 1 };
      });
      const { rows } = await db.pool.query(
        "select fingerprint_hash as hash, is_flagged as flagged, flag_reason as reason, reputation_score as score, abuse_incidents as incidents from fingerprint_reputation order by 1",
      );
      assert.deepEqual(rows, expected, `seed ${seed}`);

      const candidates = expected
        .map((e, i) => ({ ...e, ip: fingerprints[i]!.ip, analysed: fingerprints[i]!.seen <= 60 }))
        .filter((e) => e.analysed && e.ip !== null && e.incidents >= ban.minIncidents)
        .sort((a, b) => b.incidents - a.incidents || (a.hash < b.hash ? -1 : 1));
      const valid = candidates.filter((c) => canonicalOf(c.ip).canonical && !canonicalOf(c.ip).reserved);
      const seen = new Set<string>();
      const unique = valid.filter((c) => !seen.has(canonicalOf(c.ip).canonical!) && seen.add(canonicalOf(c.ip).canonical!));
      const expectedBans = referenceBans(existing, unique.map((c) => ({ ip: canonicalOf(c.ip).canonical!, fingerprint: c.hash, reason: "Automated: repeated behavioral violations" })), "behavioral_analysis", ban.days);
      assert.deepEqual((await actualBans()).sort(byIp), expectedBans.sort(byIp), `seed ${seed}`);
      assert.equal(result.itemsFailed, candidates.filter((c) => canonicalOf(c.ip).canonical === null).length, `seed ${seed}`);
    });
  }
});

describe("malicious_ip_blacklist against a reference implementation", () => {
  for (const seed of [11, 12, 13, 14]) {
    it(`seed ${seed}`, async () => {
      const rand = random(seed);
      const groups = Array.from({ length: 120 }, () => ({
        ip: pick(rand, ADDRESSES).text,
        count: pick(rand, [1, 2, 3, 4, 5, 30, 49, 50, 51]),
        hoursAgo: pick(rand, [0.5, 6, 23, 25, 48]),
        bot: rand() < 0.2,
        scanner: rand() < 0.15,
        country: pick(rand, ["RU", "br", "DE", "US", null, "VN", "FR"]),
      }));
      await db.pool.query(
        `insert into user_sessions (session_id, started_at, ip_address, country, is_bot, is_scanner)
         select 'g' || g.ord || '-' || i, now() - make_interval(secs => (g.v->>'hoursAgo')::float8 * 3600), g.v->>'ip', g.v->>'country',
                (g.v->>'bot')::boolean, (g.v->>'scanner')::boolean
         from jsonb_array_elements($1::jsonb) with ordinality as g(v, ord), generate_series(1, (g.v->>'count')::int) i`,
        [JSON.stringify(groups)],
      );
      const existing = await seedExistingBans(rand);
      const result = await runJobLogic(db.pool, maliciousIpBlacklist);

      // reference
      const risky = new Set(["RU", "BR", "VN"]);
      const perIp = new Map<string, { human: number; scanner: number; sessions: number; risk: number; datacenter: boolean }>();
      let invalid = 0;
      for (const g of groups.filter((g) => g.hoursAgo <= 24 && g.ip !== null)) {
        const address = canonicalOf(g.ip);
        if (!address.canonical) {
          invalid += g.count;
          continue;
        }
        const stats = perIp.get(address.canonical) ?? { human: 0, scanner: 0, sessions: 0, risk: 0, datacenter: address.datacenter === true };
        stats.sessions += g.count;
        if (!g.bot) stats.human += g.count;
        if (g.scanner) stats.scanner += g.count;
        if (g.country && risky.has(g.country.toUpperCase())) stats.risk += g.count;
        perIp.set(address.canonical, stats);
      }
      const flagged = [...perIp.entries()]
        .map(([ip, s]) => ({ ip, order: s.human >= 100 ? 1 : s.scanner >= 3 ? 2 : s.datacenter ? 3 : s.risk >= 5 ? 4 : 0 }))
        .filter((f) => f.order > 0 && !ADDRESSES.find((a) => a.canonical === f.ip)!.reserved);
      const reasons = ["", "high request volume", "scanner activity detected", "known datacenter IP range", "high-risk country pattern"];
      const candidates = flagged.map((f) => ({ ip: f.ip, fingerprint: null, reason: `Automated: ${reasons[f.order]}` }));
      const expectedBans = referenceBans(existing, candidates, "malicious_ip_blacklist", 14);
      assert.deepEqual((await actualBans()).sort(byIp), expectedBans.sort(byIp), `seed ${seed}`);
      assert.equal(result.itemsFailed, invalid, `seed ${seed}`);
    });
  }
});
