// bench:security — the two security jobs at production-like volume, each against a row-by-row
// baseline (a plain loop in JS: one round trip per row, the shape of the original) measured in
// the same run on the same data.
//  1. behavioral_analysis over BENCH_FINGERPRINTS (200k) fingerprints seen in the last hour.
//     The baseline runs on a BENCH_SAMPLE (10k) sample and is extrapolated linearly (labelled).
//  2. malicious_ip_blacklist over BENCH_SESSIONS (1M) sessions started in the last 24 h. The
//     baseline reads every session into JS, counts per address and bans address by address.
//  3. EXPLAIN of the blacklist statement: how many scans of user_sessions (target: 1).
// Needs TEST_DATABASE_URL (npm run bench:security provides one) or DATABASE_URL.
if (!process.env.TEST_DATABASE_URL && process.env.DATABASE_URL) process.env.TEST_DATABASE_URL = process.env.DATABASE_URL;

const { createTestDatabase, testLogger } = await import("../test/helpers/db.ts");
const { behavioralAnalysis } = await import("../src/jobs/behavioral_analysis/index.ts");
const { maliciousIpBlacklist } = await import("../src/jobs/malicious_ip_blacklist/index.ts");
const { sessionScansInPlan } = await import("../test/helpers/blacklist-plan.ts");
import type { DefinedJob } from "../src/jobs/define.ts";
import type { JobResult } from "../src/history/types.ts";
import type { Pool } from "../src/db/pool.ts";

const FINGERPRINTS = Number(process.env.BENCH_FINGERPRINTS ?? 200_000);
const SAMPLE = Number(process.env.BENCH_SAMPLE ?? 10_000);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 1_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const TARGET_SECONDS = 5;

const db = await createTestDatabase();
const pool: Pool = db.pool;
const fmt = (n: number) => n.toLocaleString("en-US");
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

async function runJob(job: DefinedJob, payload: Record<string, unknown> = {}): Promise<JobResult> {
  const parsed = job.schema.parse(payload) as Record<string, unknown> & { enforce: boolean };
  const client = await pool.connect();
  try {
    return await job.run({ payload: parsed, enforce: parsed.enforce, db: client, logger: testLogger, signal: new AbortController().signal, jobName: job.name, task: job.name, jobId: null, attempt: 1, scheduledFor: null, nodeId: "bench" });
  } finally {
    client.release();
  }
}

async function resetBans(): Promise<void> {
  await pool.query("truncate banned_ips, scheduler.ban_offences, scheduler.analysis_watermarks");
}

// ---------------------------------------------------------------- behavioral_analysis
// A pristine copy of the fingerprints, restored before every run; last_seen_at is kept as an
// offset so every run sees the same rows inside its one-hour window.
async function seedFingerprints(): Promise<void> {
  await pool.query("select setseed(0.42)");
  await pool.query(`create table bench_fingerprints as
    select 'fp' || lpad(i::text, 7, '0') as fingerprint_hash,
      (random() * 3000)::int as seen_seconds_ago,
      case when random() < 0.25 then 101 + (random() * 900)::int else (random() * 100)::int end as total_request_count,
      case when random() < 0.05 then 10.5 + random() * 20 else random() * 10 end as peak_requests_per_minute,
      case when random() < 0.3 then 60 + (random() * 60)::int else (random() * 59)::int end as sustained_high_velocity_minutes,
      case when random() < 0.08 then 11 + (random() * 20)::int else (random() * 10)::int end as total_session_count,
      (random() < 0.1) as is_flagged,
      (random() * 100)::int as reputation_score,
      (random() * 3)::int as abuse_incidents,
      case when i % 10 = 0 then '2001:db8::' || to_hex(i) when i % 97 = 0 then 'not-an-ip' else
        '11.' || (i / 65536) % 256 || '.' || (i / 256) % 256 || '.' || i % 256 end as last_ip_address
    from generate_series(1, $1) i`, [FINGERPRINTS]);
}

async function restoreFingerprints(): Promise<void> {
  await pool.query("truncate fingerprint_reputation");
  await pool.query(`insert into fingerprint_reputation (fingerprint_hash, last_seen_at, total_request_count, peak_requests_per_minute,
      sustained_high_velocity_minutes, total_session_count, is_flagged, reputation_score, abuse_incidents, last_ip_address)
    select fingerprint_hash, now() - make_interval(secs => seen_seconds_ago), total_request_count, peak_requests_per_minute,
      sustained_high_velocity_minutes, total_session_count, is_flagged, reputation_score, abuse_incidents, last_ip_address
    from bench_fingerprints`);
  await pool.query("vacuum analyze fingerprint_reputation");
  await resetBans();
}

interface FingerprintRow {
  fingerprint_hash: string;
  total_request_count: string;
  peak_requests_per_minute: number;
  sustained_high_velocity_minutes: number;
  total_session_count: number;
  is_flagged: boolean;
  reputation_score: number;
  abuse_incidents: number;
  last_ip_address: string | null;
}

/** The original's shape without its 1000-row limit: select, then one UPDATE and one ban round trip per row. */
async function behavioralRowByRow(limit: number): Promise<number> {
  const { rows } = await pool.query<FingerprintRow>(
    "select * from fingerprint_reputation where last_seen_at > now() - interval '1 hour' order by fingerprint_hash limit $1",
    [limit],
  );
  for (const fp of rows) {
    const reasons: string[] = [];
    let penalty = 0;
    if (Number(fp.total_request_count) > 100) (reasons.push("request_count_exceeded_100"), (penalty += 10));
    if (fp.peak_requests_per_minute > 10 && fp.sustained_high_velocity_minutes >= 60) (reasons.push("sustained_velocity_10rpm_1hr"), (penalty += 15));
    if (fp.total_session_count > 10) (reasons.push("session_count_exceeded_10"), (penalty += 20));
    if (fp.reputation_score < 20 && !fp.is_flagged) reasons.push("reputation_score_below_threshold");
    if (reasons.length > 0) {
      const score = Math.min(100, Math.max(0, fp.reputation_score - penalty));
      await pool.query(
        `update fingerprint_reputation set is_flagged = true, flag_reason = $2, flagged_at = now(), reputation_score = $3,
           abuse_incidents = abuse_incidents + 1, last_abuse_at = now() where fingerprint_hash = $1`,
        [fp.fingerprint_hash, reasons[0], score],
      );
    }
    if (fp.abuse_incidents + (reasons.length > 0 ? 1 : 0) >= 3 && fp.last_ip_address) {
      await pool.query("select * from scheduler.ban_ips(array[$1], array['Automated: repeated behavioral violations'], 'behavioral_analysis', interval '7 days', array[$2])", [
        fp.last_ip_address,
        fp.fingerprint_hash,
      ]);
    }
  }
  return rows.length;
}

// ---------------------------------------------------------------- malicious_ip_blacklist
async function seedSessions(): Promise<void> {
  await pool.query("select setseed(0.24)");
  // 90% from 200k ordinary addresses, 4% from 400 heavy hitters (~100 sessions each), 2%
  // scanners (~6 each), 1% datacenter, 3% bots; 12% from high-risk countries; 0.1% bad text.
  await pool.query(`insert into user_sessions (session_id, started_at, last_activity_at, ip_address, country, is_bot, is_scanner)
    select 's' || i, now() - make_interval(secs => random() * 86000), now(),
      case
        when r < 0.001 then 'garbage-' || (i % 50)
        when r < 0.041 then '12.0.' || (i % 400) / 256 || '.' || (i % 400) % 256
        when r < 0.061 then '13.0.' || (i % 3300) / 256 || '.' || (i % 3300) % 256
        when r < 0.071 then '47.79.' || (i % 2000) / 256 || '.' || (i % 2000) % 256
        when r < 0.2 then '2001:db8:1::' || to_hex(i % 30000)
        else '11.' || (i % 200000) / 65536 || '.' || ((i % 200000) / 256) % 256 || '.' || (i % 200000) % 256
      end,
      case when random() < 0.12 then 'RU' else 'US' end,
      r >= 0.071 and r < 0.101,
      r >= 0.041 and r < 0.061
    from (select i, random() as r from generate_series(1, $1) i) g`, [SESSIONS]);
  await pool.query("vacuum analyze user_sessions");
}

/** Every session into JS, counted per address, then one ban round trip per flagged address. */
async function blacklistRowByRow(): Promise<number> {
  const { rows } = await pool.query({
    text: "select ip_address, country, is_bot, is_scanner from user_sessions where started_at >= now() - interval '24 hours'",
    rowMode: "array",
  });
  const countries = new Set((await pool.query<{ c: string }>("select country_code as c from scheduler.high_risk_countries")).rows.map((r) => r.c));
  const perIp = new Map<string, { human: number; scanner: number; risk: number; sessions: number }>();
  for (const [ip, country, bot, scanner] of rows as [string | null, string | null, boolean, boolean][]) {
    if (!ip) continue;
    const s = perIp.get(ip) ?? { human: 0, scanner: 0, risk: 0, sessions: 0 };
    s.sessions++;
    if (!bot) s.human++;
    if (scanner) s.scanner++;
    if (country && countries.has(country.toUpperCase())) s.risk++;
    perIp.set(ip, s);
  }
  let banned = 0;
  for (const [ip, s] of perIp) {
    const reason =
      s.human >= 100 ? "high request volume" : s.scanner >= 3 ? "scanner activity detected" : ip.startsWith("47.79.") || ip.startsWith("47.82.") ? "known datacenter IP range" : s.risk >= 5 ? "high-risk country pattern" : null;
    if (!reason) continue;
    await pool.query("select * from scheduler.ban_ips(array[$1], array[$2], 'malicious_ip_blacklist', interval '14 days')", [ip, `Automated: ${reason}`]);
    banned++;
  }
  return banned;
}

// ---------------------------------------------------------------- run
console.log(`# bench:security on PostgreSQL ${(await pool.query("show server_version")).rows[0].server_version}`);

await seedFingerprints();
const behavioralRuns: number[] = [];
let behavioralResult: JobResult | undefined;
for (let round = 0; round < ROUNDS; round++) {
  await restoreFingerprints();
  const run = await timed(() => runJob(behavioralAnalysis));
  behavioralRuns.push(run.ms);
  behavioralResult = run.value;
}
await restoreFingerprints();
const dryRun = await timed(() => runJob(behavioralAnalysis, { enforce: false }));
await restoreFingerprints();
const baseline = await timed(() => behavioralRowByRow(SAMPLE));
const behavioralBest = Math.min(...behavioralRuns);
const baselineExtrapolated = (baseline.ms * FINGERPRINTS) / baseline.value;
const d = behavioralResult!.details as { flagged: number; bans: Record<string, number> };

console.log(`\nbehavioral_analysis: ${fmt(FINGERPRINTS)} fingerprints seen in the window; ${fmt(d.flagged)} flagged, ${fmt(d.bans.created ?? 0)} IPs banned`);
console.log(`  set-based job (one statement)  ${secs(behavioralBest)}   (runs: ${behavioralRuns.map(secs).join(", ")})`);
console.log(`  dry run                        ${secs(dryRun.ms)}`);
console.log(`  row-by-row baseline            ${secs(baselineExtrapolated)}   EXTRAPOLATED: ${secs(baseline.ms)} measured on ${fmt(baseline.value)} rows x ${(FINGERPRINTS / baseline.value).toFixed(1)}`);
console.log(`  ratio                          ${(baselineExtrapolated / behavioralBest).toFixed(1)}x faster than the baseline`);

await pool.query("drop table bench_fingerprints; truncate fingerprint_reputation");
await seedSessions();
const blacklistRuns: number[] = [];
let blacklistResult: JobResult | undefined;
for (let round = 0; round < ROUNDS; round++) {
  await resetBans();
  const run = await timed(() => runJob(maliciousIpBlacklist));
  blacklistRuns.push(run.ms);
  blacklistResult = run.value;
}
await resetBans();
const blacklistDry = await timed(() => runJob(maliciousIpBlacklist, { enforce: false }));
await resetBans();
const blacklistBaseline = await timed(() => blacklistRowByRow());
const scans = await sessionScansInPlan(pool);
const blacklistBest = Math.min(...blacklistRuns);
const b = blacklistResult!.details as { addresses: number; bans: Record<string, number>; invalidIpSessions: number };

console.log(`\nmalicious_ip_blacklist: ${fmt(SESSIONS)} sessions in the window, ${fmt(b.addresses)} addresses; ${fmt(b.bans.created ?? 0)} banned, ${fmt(b.invalidIpSessions)} sessions with invalid IP text skipped`);
console.log(`  set-based job (one statement)  ${secs(blacklistBest)}   (runs: ${blacklistRuns.map(secs).join(", ")})`);
console.log(`  dry run                        ${secs(blacklistDry.ms)}`);
console.log(`  row-by-row baseline            ${secs(blacklistBaseline.ms)}   measured at full size (${fmt(blacklistBaseline.value)} flagged addresses, one ban round trip each)`);
console.log(`  ratio                          ${(blacklistBaseline.ms / blacklistBest).toFixed(1)}x faster than the baseline`);
console.log(`  EXPLAIN: user_sessions scanned ${scans} time(s) (target 1)`);

const ok = behavioralBest < TARGET_SECONDS * 1000 && blacklistBest < TARGET_SECONDS * 1000 && scans === 1;
console.log(`\ntargets (each job < ${TARGET_SECONDS} s, one scan of user_sessions): ${ok ? "met" : "NOT met"}`);
await db.drop();
