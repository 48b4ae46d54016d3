// bench:security — the two security jobs against a row-by-row baseline (a plain loop in JS: one
// round trip per row, the shape of the original), measured in full in the same run, on the same
// data and settings, best of BENCH_ROUNDS (2) on each side. After every run the outcome is read
// back and must be the same on both sides, or the bench fails: every fingerprint's flag, reason,
// score and incidents; every banned_ips row (address, reason, duration, ban count, source,
// fingerprint) and every ban_offences row.
//  1. behavioral_analysis over BENCH_FINGERPRINTS (50k) fingerprints seen in the last hour: an
//     N the row-by-row baseline finishes (about a minute per run here). Then, the job alone at
//     BENCH_SCALE_FINGERPRINTS (200k, production-like; 0 skips it) for its time target; the
//     baseline is not run, nor estimated, at that size.
//  2. malicious_ip_blacklist over BENCH_SESSIONS (1M) sessions started in the last 24 h. The
//     baseline reads every session into JS, counts per address and bans address by address.
//  3. EXPLAIN of the blacklist statement: how many scans of user_sessions (target: 1).
// Needs TEST_DATABASE_URL (npm run bench:security provides one) or DATABASE_URL. The bench's
// database is dropped at the end, also when a check fails.
if (!process.env.TEST_DATABASE_URL && process.env.DATABASE_URL) process.env.TEST_DATABASE_URL = process.env.DATABASE_URL;

const { createTestDatabase, testLogger } = await import("../test/helpers/db.ts");
const { behavioralAnalysis } = await import("../src/platform/jobs/behavioral_analysis/index.ts");
const { maliciousIpBlacklist } = await import("../src/platform/jobs/malicious_ip_blacklist/index.ts");
const { sessionScansInPlan } = await import("../test/helpers/blacklist-plan.ts");
import type { DefinedJob } from "../src/engine/jobs/define.ts";
import type { JobResult } from "../src/engine/history/types.ts";
import type { Pool } from "../src/engine/db/pool.ts";

const FINGERPRINTS = Number(process.env.BENCH_FINGERPRINTS ?? 50_000);
const SCALE_FINGERPRINTS = Number(process.env.BENCH_SCALE_FINGERPRINTS ?? 200_000);
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
async function seedFingerprints(count: number): Promise<void> {
  await pool.query("drop table if exists bench_fingerprints");
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
    from generate_series(1, $1) i`, [count]);
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

/** The original's shape without its 1000-row limit: select, then one UPDATE and one ban round trip per row. Returns the round trips. */
async function behavioralRowByRow(): Promise<number> {
  const { rows } = await pool.query<FingerprintRow>("select * from fingerprint_reputation where last_seen_at > now() - interval '1 hour' order by fingerprint_hash");
  let roundTrips = 1;
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
      roundTrips++;
    }
    if (fp.abuse_incidents + (reasons.length > 0 ? 1 : 0) >= 3 && fp.last_ip_address) {
      await pool.query("select * from scheduler.ban_ips(array[$1], array['Automated: repeated behavioral violations'], 'behavioral_analysis', interval '7 days', array[$2])", [
        fp.last_ip_address,
        fp.fingerprint_hash,
      ]);
      roundTrips++;
    }
  }
  return roundTrips;
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

// ---------------------------------------------------------------- outcome
/** What a run left behind, one text line per row, sorted: compared between the two sides. */
interface Outcome {
  lines: string[];
  flagged: number;
  banned: number;
  /** "7 days x 12345" */
  durations: string;
}

async function outcome(withFingerprints: boolean): Promise<Outcome> {
  const lines = async (sql: string) => (await pool.query<{ line: string }>(sql)).rows.map((row) => row.line);
  const fingerprints = withFingerprints
    ? await lines(`select concat_ws('|', 'fingerprint', fingerprint_hash, is_flagged, flag_reason, reputation_score, abuse_incidents,
        flagged_at is not null, last_abuse_at is not null) as line from fingerprint_reputation order by fingerprint_hash`)
    : [];
  const bans = await lines(`select concat_ws('|', 'ban', ip_address, reason, expires_at - banned_at, ban_count, is_permanent, ban_source,
      source_fingerprint) as line from banned_ips order by ip_address`);
  const offences = await lines("select concat_ws('|', 'offence', ip_address, offences, last_source, last_reason) as line from scheduler.ban_offences order by ip_address");
  const { rows } = await pool.query<{ durations: string }>(
    "select coalesce(string_agg(d || ' x ' || n, ', ' order by d), 'none') as durations from (select (expires_at - banned_at)::text as d, count(*) as n from banned_ips group by 1) x",
  );
  return {
    lines: [...fingerprints, ...bans, ...offences],
    // flagged by this run: flagged_at is set (restore leaves it null)
    flagged: fingerprints.filter((line) => line.split("|")[6] === "t").length,
    banned: bans.length,
    durations: rows[0]!.durations,
  };
}

/** Fails loudly when a run's outcome differs from the reference run's. */
function assertSame(what: string, reference: Outcome, other: Outcome, label: string): void {
  if (reference.lines.length === other.lines.length && reference.lines.every((line, i) => line === other.lines[i])) return;
  const theirs = new Set(other.lines);
  const ours = new Set(reference.lines);
  const onlyReference = reference.lines.filter((line) => !theirs.has(line));
  const onlyOther = other.lines.filter((line) => !ours.has(line));
  throw new Error(
    `${what}: ${label} differs from the set-based job's outcome (${onlyReference.length} row(s) only in the job's, ${onlyOther.length} only in ${label}'s)\n` +
      `  only in the job's:  ${onlyReference.slice(0, 5).join("\n                     ")}\n` +
      `  only in ${label}'s: ${onlyOther.slice(0, 5).join("\n                     ")}`,
  );
}

const stats = (runs: number[]) => `best ${secs(Math.min(...runs))}  (runs: ${runs.map(secs).join(", ")})`;

// ---------------------------------------------------------------- run
const version = (await pool.query("show server_version")).rows[0].server_version as string;
console.log(`# bench:security on PostgreSQL ${version}, best of ${ROUNDS} runs per side`);
const summary: string[] = [];
let ok = true;
try {
  // 1. behavioral_analysis: both sides at FINGERPRINTS
  await seedFingerprints(FINGERPRINTS);
  const behavioralRuns: number[] = [];
  let behavioralResult: JobResult | undefined;
  let reference: Outcome | undefined;
  for (let round = 0; round < ROUNDS; round++) {
    await restoreFingerprints();
    const run = await timed(() => runJob(behavioralAnalysis));
    behavioralRuns.push(run.ms);
    behavioralResult = run.value;
    const after = await outcome(true);
    if (reference) assertSame("behavioral_analysis", reference, after, `job run ${round + 1}`);
    reference ??= after;
  }
  const baselineRuns: number[] = [];
  let roundTrips = 0;
  for (let round = 0; round < ROUNDS; round++) {
    await restoreFingerprints();
    const run = await timed(() => behavioralRowByRow());
    baselineRuns.push(run.ms);
    roundTrips = run.value;
    assertSame("behavioral_analysis", reference!, await outcome(true), `row-by-row run ${round + 1}`);
  }
  await restoreFingerprints();
  const dryRun = await timed(() => runJob(behavioralAnalysis, { enforce: false }));
  const behavioralBest = Math.min(...behavioralRuns);
  const baselineBest = Math.min(...baselineRuns);
  const d = behavioralResult!.details as { flagged: number; bans: Record<string, number> };
  if (d.flagged !== reference!.flagged || (d.bans.created ?? 0) !== reference!.banned) {
    throw new Error(`behavioral_analysis: the job reported ${d.flagged} flagged / ${d.bans.created} banned, the tables hold ${reference!.flagged} / ${reference!.banned}`);
  }

  console.log(`\nbehavioral_analysis: ${fmt(FINGERPRINTS)} fingerprints seen in the window (both sides measured in full)`);
  console.log(`  set-based job (one statement)  ${stats(behavioralRuns)}`);
  console.log(`  row-by-row baseline            ${stats(baselineRuns)}   ${fmt(roundTrips)} round trips per run`);
  console.log(`  ratio                          ${(baselineBest / behavioralBest).toFixed(1)}x faster than the baseline (best / best)`);
  console.log(`  same outcome on both sides, every run: ${fmt(reference!.flagged)} fingerprints flagged, ${fmt(reference!.banned)} IPs banned (durations: ${reference!.durations})`);
  console.log(`  dry run                        ${secs(dryRun.ms)}`);
  summary.push(
    `behavioral_analysis, ${fmt(FINGERPRINTS)} fingerprints: set-based ${secs(behavioralBest)} vs row-by-row ${secs(baselineBest)} = ${(baselineBest / behavioralBest).toFixed(1)}x ` +
      `(same ${fmt(reference!.flagged)} flags and ${fmt(reference!.banned)} bans)`,
  );

  // 1b. the job alone at production-like volume (no baseline at this size)
  let scaleBest: number | null = null;
  if (SCALE_FINGERPRINTS > 0) {
    await seedFingerprints(SCALE_FINGERPRINTS);
    const runs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await restoreFingerprints();
      runs.push((await timed(() => runJob(behavioralAnalysis))).ms);
    }
    scaleBest = Math.min(...runs);
    console.log(`  at ${fmt(SCALE_FINGERPRINTS)} fingerprints, the job alone: ${stats(runs)}   (target < ${TARGET_SECONDS} s; the baseline is not run at this size)`);
    summary.push(`behavioral_analysis, ${fmt(SCALE_FINGERPRINTS)} fingerprints, job alone: ${secs(scaleBest)} (target < ${TARGET_SECONDS} s)`);
  }
  await pool.query("drop table bench_fingerprints; truncate fingerprint_reputation");

  // 2. malicious_ip_blacklist: both sides at SESSIONS
  await seedSessions();
  const blacklistRuns: number[] = [];
  let blacklistResult: JobResult | undefined;
  let blacklistReference: Outcome | undefined;
  for (let round = 0; round < ROUNDS; round++) {
    await resetBans();
    const run = await timed(() => runJob(maliciousIpBlacklist));
    blacklistRuns.push(run.ms);
    blacklistResult = run.value;
    const after = await outcome(false);
    if (blacklistReference) assertSame("malicious_ip_blacklist", blacklistReference, after, `job run ${round + 1}`);
    blacklistReference ??= after;
  }
  const blacklistBaselineRuns: number[] = [];
  let attempts = 0;
  for (let round = 0; round < ROUNDS; round++) {
    await resetBans();
    const run = await timed(() => blacklistRowByRow());
    blacklistBaselineRuns.push(run.ms);
    attempts = run.value;
    assertSame("malicious_ip_blacklist", blacklistReference!, await outcome(false), `row-by-row run ${round + 1}`);
  }
  await resetBans();
  const blacklistDry = await timed(() => runJob(maliciousIpBlacklist, { enforce: false }));
  const scans = await sessionScansInPlan(pool);
  const blacklistBest = Math.min(...blacklistRuns);
  const blacklistBaselineBest = Math.min(...blacklistBaselineRuns);
  const b = blacklistResult!.details as { addresses: number; bans: Record<string, number>; invalidIpSessions: number };

  console.log(`\nmalicious_ip_blacklist: ${fmt(SESSIONS)} sessions in the window, ${fmt(b.addresses)} addresses, ${fmt(b.invalidIpSessions)} sessions with invalid IP text`);
  console.log(`  set-based job (one statement)  ${stats(blacklistRuns)}`);
  console.log(`  row-by-row baseline            ${stats(blacklistBaselineRuns)}   (every session read into JS, ${fmt(attempts)} ban round trips per run, invalid addresses included)`);
  console.log(`  ratio                          ${(blacklistBaselineBest / blacklistBest).toFixed(1)}x faster than the baseline (best / best)`);
  console.log(`  same outcome on both sides, every run: ${fmt(blacklistReference!.banned)} IPs banned (durations: ${blacklistReference!.durations})`);
  console.log(`  dry run                        ${secs(blacklistDry.ms)}`);
  console.log(`  EXPLAIN: user_sessions scanned ${scans} time(s) (target 1)`);
  summary.push(
    `malicious_ip_blacklist, ${fmt(SESSIONS)} sessions: set-based ${secs(blacklistBest)} vs row-by-row ${secs(blacklistBaselineBest)} = ${(blacklistBaselineBest / blacklistBest).toFixed(1)}x ` +
      `(same ${fmt(blacklistReference!.banned)} bans); user_sessions scanned ${scans} time(s)`,
  );

  ok = (scaleBest ?? behavioralBest) < TARGET_SECONDS * 1000 && blacklistBest < TARGET_SECONDS * 1000 && scans === 1;
  console.log(`\nsummary (PostgreSQL ${version}, best of ${ROUNDS} runs per side):\n  ${summary.join("\n  ")}`);
  console.log(`targets (each job < ${TARGET_SECONDS} s at production-like volume, one scan of user_sessions): ${ok ? "met" : "NOT met"}`);
} finally {
  await db.drop();
}
