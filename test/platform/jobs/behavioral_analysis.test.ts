import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import { behavioralAnalysis } from "../../../src/platform/jobs/behavioral_analysis/index.ts";
import { useTestDatabase } from "../../helpers/db.ts";
import { fingerprintState, resetFingerprints, seedFingerprints, type Fingerprint } from "../../helpers/fingerprints.ts";
import { runJobLogic, runThroughWorker } from "../../helpers/jobs.ts";

const db = useTestDatabase();

const reset = () => resetFingerprints(db.pool);
const seed = (fingerprints: Fingerprint[]) => seedFingerprints(db.pool, fingerprints);
const state = (hash: string) => fingerprintState(db.pool, hash);

describe("behavioral_analysis rules", () => {
  beforeEach(reset);

  // [case, fingerprint, expected reason or null, expected score]
  const cases: [string, Fingerprint, string | null, number][] = [
    ["requests at 100: no match", { hash: "r100", requests: 100 }, null, 50],
    ["requests at 101: -10", { hash: "r101", requests: 101 }, "request_count_exceeded_100", 40],
    ["peak exactly 10 is not above 10", { hash: "v10", peak: 10, sustained: 60 }, null, 50],
    ["peak above 10 for 59 minutes", { hash: "v59", peak: 10.5, sustained: 59 }, null, 50],
    ["peak above 10 for 60 minutes: -15", { hash: "v60", peak: 10.5, sustained: 60 }, "sustained_velocity_10rpm_1hr", 35],
    ["sessions at 10: no match", { hash: "s10", sessions: 10 }, null, 50],
    ["sessions at 11: -20", { hash: "s11", sessions: 11 }, "session_count_exceeded_10", 30],
    ["score 20: not below 20", { hash: "low20", score: 20 }, null, 20],
    ["score 19, not flagged: flagged without penalty", { hash: "low19", score: 19 }, "reputation_score_below_threshold", 19],
    ["score 19 but already flagged", { hash: "low19f", score: 19, flagged: true }, null, 19],
  ];
  for (const [name, fingerprint, reason, score] of cases) {
    it(name, async () => {
      await seed([fingerprint]);
      const result = await runJobLogic(db.pool, behavioralAnalysis);
      const after = await state(fingerprint.hash);
      assert.equal(after.flag_reason, reason);
      assert.equal(after.reputation_score, score);
      assert.equal(after.is_flagged, reason !== null || fingerprint.flagged === true);
      assert.equal(after.abuse_incidents, reason ? 1 : 0);
      assert.equal(after.last_abuse_at !== null, reason !== null);
      assert.equal(result.itemsProcessed, reason ? 1 : 0);
    });
  }

  it("adds up the penalties of all matching rules and names the first one", async () => {
    await seed([
      { hash: "req+sess", requests: 101, sessions: 11 },
      { hash: "vel+sess", peak: 20, sustained: 90, sessions: 11 },
      { hash: "all3", requests: 500, peak: 20, sustained: 90, sessions: 50, score: 80 },
      { hash: "low+req", requests: 101, score: 15 },
    ]);
    const result = await runJobLogic(db.pool, behavioralAnalysis);
    assert.deepEqual(await state("req+sess").then((s) => [s.flag_reason, s.reputation_score]), ["request_count_exceeded_100", 20]);
    assert.deepEqual(await state("vel+sess").then((s) => [s.flag_reason, s.reputation_score]), ["sustained_velocity_10rpm_1hr", 15]);
    assert.deepEqual(await state("all3").then((s) => [s.flag_reason, s.reputation_score]), ["request_count_exceeded_100", 35]);
    // the low-reputation rule reads the score from before this run's penalties
    assert.deepEqual(await state("low+req").then((s) => [s.flag_reason, s.reputation_score]), ["request_count_exceeded_100", 5]);
    assert.deepEqual(result.details?.ruleMatches, {
      request_count_exceeded_100: 3,
      sustained_velocity_10rpm_1hr: 2,
      session_count_exceeded_10: 3,
      reputation_score_below_threshold: 1,
    });
    for (const hash of ["req+sess", "all3", "low+req"]) assert.equal((await state(hash)).abuse_incidents, 1, "one incident per run, not per rule");
  });

  it("clamps the new score to 0..100", async () => {
    await seed([
      { hash: "to-zero", requests: 101, peak: 11, sustained: 60, sessions: 11, score: 30 },
      { hash: "negative", requests: 101, score: -40 },
      { hash: "above-100", requests: 101, score: 250 },
    ]);
    await runJobLogic(db.pool, behavioralAnalysis);
    assert.equal((await state("to-zero")).reputation_score, 0);
    assert.equal((await state("negative")).reputation_score, 0);
    assert.equal((await state("above-100")).reputation_score, 100);
  });

  it("leaves fingerprints that match nothing untouched", async () => {
    await seed([{ hash: "clean", requests: 5, sessions: 1 }]);
    const before = await db.pool.query("select * from fingerprint_reputation");
    await runJobLogic(db.pool, behavioralAnalysis);
    assert.deepEqual((await db.pool.query("select * from fingerprint_reputation")).rows, before.rows);
  });

  it("analyses only fingerprints seen in the window (windowMinutes, default 60)", async () => {
    await seed([
      { hash: "inside", requests: 101, seenMinutesAgo: 59 },
      { hash: "outside", requests: 101, seenMinutesAgo: 61 },
      { hash: "long-ago", requests: 101, seenMinutesAgo: 300 },
    ]);
    const first = await runJobLogic(db.pool, behavioralAnalysis);
    assert.equal(first.details?.analysed, 1);
    assert.equal((await state("outside")).is_flagged, false);
    await db.pool.query("truncate scheduler.analysis_watermarks");
    const wide = await runJobLogic(db.pool, behavioralAnalysis, { windowMinutes: 400 });
    assert.equal(wide.details?.analysed, 3);
  });

  it("switches single rules off and takes other thresholds from the payload", async () => {
    await seed([
      { hash: "req", requests: 101 },
      { hash: "req-high", requests: 501 },
      { hash: "sess", sessions: 11 },
    ]);
    await runJobLogic(db.pool, behavioralAnalysis, {
      rules: { requestCount: { threshold: 500, penalty: 7 }, sessionCount: { enabled: false } },
    });
    assert.equal((await state("req")).is_flagged, false);
    assert.deepEqual(await state("req-high").then((s) => [s.flag_reason, s.reputation_score]), ["request_count_exceeded_100", 43]);
    assert.equal((await state("sess")).is_flagged, false);
  });
});

describe("behavioral_analysis idempotency", () => {
  beforeEach(reset);

  it("does not penalise again without new activity, and does after new activity", async () => {
    await seed([{ hash: "busy", requests: 101 }]);
    const first = await runJobLogic(db.pool, behavioralAnalysis);
    assert.equal(first.itemsProcessed, 1);
    const second = await runJobLogic(db.pool, behavioralAnalysis);
    assert.equal(second.details?.analysed, 0);
    assert.equal(second.itemsProcessed, 0);
    assert.deepEqual(await state("busy").then((s) => [s.reputation_score, s.abuse_incidents]), [40, 1]);

    await db.pool.query("update fingerprint_reputation set last_seen_at = now() where fingerprint_hash = 'busy'");
    const third = await runJobLogic(db.pool, behavioralAnalysis);
    assert.equal(third.itemsProcessed, 1);
    assert.deepEqual(await state("busy").then((s) => [s.reputation_score, s.abuse_incidents]), [30, 2]);
  });

  it("analyses on the next run a row committed after a run but dated before its watermark, and still penalises once", async () => {
    await seed([{ hash: "on-time", requests: 101, seenMinutesAgo: 1 }]);
    // The platform's transaction stamps last_seen_at = now() (its start), then commits only
    // after a run has read its snapshot and moved the watermark past that time.
    const platform = await db.pool.connect();
    try {
      await platform.query("begin");
      await platform.query(
        `insert into fingerprint_reputation (fingerprint_hash, first_seen_at, last_seen_at, total_request_count, updated_at)
         values ('late', now(), now(), 101, now())`,
      );
      await new Promise((resolve) => setTimeout(resolve, 20));
      const first = await runJobLogic(db.pool, behavioralAnalysis);
      assert.equal(first.itemsProcessed, 1, "the first run sees only the committed row");
      await platform.query("commit");
    } finally {
      platform.release();
    }
    const { rows } = await db.pool.query("select w.analysed_through > f.last_seen_at as dated_before from scheduler.analysis_watermarks w, fingerprint_reputation f where f.fingerprint_hash = 'late'");
    assert.equal(rows[0]!.dated_before, true, "the late row is dated before the watermark");

    const second = await runJobLogic(db.pool, behavioralAnalysis);
    assert.equal(second.itemsProcessed, 1, "the late row is analysed by the next run");
    assert.deepEqual(await state("late").then((s) => [s.reputation_score, s.abuse_incidents]), [40, 1]);
    assert.deepEqual(await state("on-time").then((s) => [s.reputation_score, s.abuse_incidents]), [40, 1], "penalised once, not again");

    const third = await runJobLogic(db.pool, behavioralAnalysis);
    assert.equal(third.itemsProcessed, 0);
    for (const hash of ["late", "on-time"]) {
      assert.deepEqual(await state(hash).then((s) => [s.reputation_score, s.abuse_incidents]), [40, 1], `${hash} penalised once`);
    }
  });

  it("forgets a penalty once no later run can read its activity again", async () => {
    await seed([{ hash: "now", requests: 101 }]);
    await db.pool.query("insert into scheduler.penalised_fingerprints (fingerprint_hash, last_seen_at) values ('old', now() - interval '3 hours'), ('recent', now() - interval '30 minutes')");
    await runJobLogic(db.pool, behavioralAnalysis);
    const { rows } = await db.pool.query("select fingerprint_hash from scheduler.penalised_fingerprints order by 1");
    assert.deepEqual(rows.map((r) => r.fingerprint_hash), ["now", "recent"]);
  });

  it("a dry run does not move the watermark", async () => {
    await seed([{ hash: "busy", requests: 101 }]);
    await runJobLogic(db.pool, behavioralAnalysis, { enforce: false });
    const real = await runJobLogic(db.pool, behavioralAnalysis);
    assert.equal(real.itemsProcessed, 1);
  });
});

describe("behavioral_analysis dry run", () => {
  beforeEach(reset);

  it("reports every finding and changes nothing", async () => {
    await seed([
      { hash: "f1", requests: 150, incidents: 2, ip: "203.0.113.50" },
      { hash: "f2", sessions: 12 },
      { hash: "f3", score: 10 },
      { hash: "clean" },
    ]);
    await db.pool.query("insert into banned_ips (ip_address, expires_at) values ('203.0.113.99', now() - interval '1 hour')");
    const snapshot = async () => ({
      fingerprints: (await db.pool.query("select * from fingerprint_reputation order by 1")).rows,
      bans: (await db.pool.query("select * from banned_ips order by 1")).rows,
      offences: (await db.pool.query("select * from scheduler.ban_offences")).rows,
      watermarks: (await db.pool.query("select * from scheduler.analysis_watermarks")).rows,
      penalties: (await db.pool.query("select * from scheduler.penalised_fingerprints")).rows,
    });
    const before = await snapshot();
    const result = await runJobLogic(db.pool, behavioralAnalysis, { enforce: false });
    assert.deepEqual(await snapshot(), before);

    assert.equal(result.itemsProcessed, 3 + 1);
    assert.equal(result.details?.findingsTotal, 3);
    assert.equal(result.details?.expiredBansToRemove, 1);
    const findings = result.details?.findings as { fingerprint: string; rule: string; evidence: number; scoreAfter: number }[];
    assert.deepEqual(
      findings.map((f) => [f.fingerprint, f.rule, f.evidence, f.scoreAfter]),
      [
        ["f1", "request_count_exceeded_100", 150, 40],
        ["f2", "session_count_exceeded_10", 12, 30],
        ["f3", "reputation_score_below_threshold", 10, 10],
      ],
    );
    assert.deepEqual(
      (result.details?.bannedIps as { ip: string; outcome: string }[]).map((b) => [b.ip, b.outcome]),
      [["203.0.113.50", "created"]],
    );
    assert.match(result.message, /^dry run/);
  });

  it("caps the findings list but reports the total", async () => {
    await seed(Array.from({ length: 25 }, (_, i) => ({ hash: `fp${String(i).padStart(2, "0")}`, requests: 101 })));
    const result = await runJobLogic(db.pool, behavioralAnalysis, { enforce: false, findingsLimit: 10 });
    assert.equal((result.details?.findings as unknown[]).length, 10);
    assert.equal(result.details?.findingsTotal, 25);
  });
});

describe("behavioral_analysis payload and worker", () => {
  beforeEach(reset);

  it("rejects unknown fields, wrong types and bad CIDRs with the field named", () => {
    const problems = [
      [{ rules: { requestCount: { treshold: 5 } } }, /treshold/],
      [{ rules: { sessionCount: { threshold: "ten" } } }, /threshold/],
      [{ ban: { extraAllowlist: ["10.0.0.1/8"] } }, /host bits|bits set/],
      [{ windowMinutes: 0 }, /windowMinutes/],
    ] as const;
    for (const [payload, pattern] of problems) {
      const parsed = behavioralAnalysis.schema.safeParse(payload);
      assert.equal(parsed.success, false, JSON.stringify(payload));
      assert.match(JSON.stringify(parsed.error?.issues), pattern);
    }
  });

  it("runs through graphile-worker and records the run", async () => {
    await seed([{ hash: "w", requests: 101 }]);
    await runThroughWorker(db.pool, [behavioralAnalysis], [{ task: "behavioral_analysis" }]);
    const { rows } = await db.pool.query("select status, items_processed, details from scheduler.job_runs where task = 'behavioral_analysis' order by id desc limit 1");
    assert.equal(rows[0].status, "success");
    assert.equal(Number(rows[0].items_processed), 1);
    assert.equal(rows[0].details.flagged, 1);
  });
});
