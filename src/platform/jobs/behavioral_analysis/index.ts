import { z } from "zod";
import { readSql } from "../../../engine/db/sql-file.ts";
import { removeExpiredBans } from "../../security/bans.ts";
import { cidrSchema } from "../../security/ip.ts";
import { defineJob, type PayloadOf } from "../../../engine/jobs/define.ts";
import { summariseBans, type BanSummaryRow } from "../../security/ban-summary.ts";

const analyseSql = readSql(import.meta.url, "analyse.sql");

/**
 * How far before the previous run's watermark each run reads again. The platform stamps
 * last_seen_at inside its own transaction, so a row can commit after a run's snapshot yet be
 * dated before that run's watermark; an hour, as cleanup_empty_contexts allows. Fixed rather than
 * a payload field: analyse.sql prunes its memory of penalties by it, which is only safe when
 * every run uses the same margin.
 */
export const LATE_COMMIT_MARGIN_MINUTES = 60;

const count = (max: number) => z.number().int().min(0).max(max);
const penalty = count(100);

// Defaults are the rules docs/jobs.md lists; each rule can be switched off or re-tuned per run.
const payload = {
  windowMinutes: z.number().int().min(1).max(7 * 24 * 60).default(60),
  rules: z
    .strictObject({
      requestCount: z
        .strictObject({ enabled: z.boolean().default(true), threshold: count(Number.MAX_SAFE_INTEGER).default(100), penalty: penalty.default(10) })
        .prefault({}),
      sustainedVelocity: z
        .strictObject({
          enabled: z.boolean().default(true),
          peakRequestsPerMinute: z.number().min(0).max(1_000_000).default(10),
          minutes: count(1_000_000).default(60),
          penalty: penalty.default(15),
        })
        .prefault({}),
      sessionCount: z
        .strictObject({ enabled: z.boolean().default(true), threshold: count(2_000_000_000).default(10), penalty: penalty.default(20) })
        .prefault({}),
      lowReputation: z.strictObject({ enabled: z.boolean().default(true), threshold: count(101).default(20) }).prefault({}),
    })
    .prefault({}),
  ban: z
    .strictObject({
      enabled: z.boolean().default(true),
      minIncidents: z.number().int().min(1).max(1_000_000).default(3),
      days: z.number().int().min(1).max(3650).default(7),
      extraAllowlist: z.array(cidrSchema).max(10_000).default([]),
    })
    .prefault({}),
  /** How many findings a dry run lists in its result (the total is always reported). */
  findingsLimit: z.number().int().min(0).max(100_000).default(1000),
  cleanupBatchSize: z.number().int().min(1).max(100_000).default(5000),
};

type Payload = PayloadOf<typeof payload>;

/** The flat settings record analyse.sql reads with jsonb_to_record. */
function settingsFor(p: Payload): Record<string, unknown> {
  const { requestCount, sustainedVelocity, sessionCount, lowReputation } = p.rules;
  return {
    enforce: p.enforce,
    window_minutes: p.windowMinutes,
    late_commit_margin_minutes: LATE_COMMIT_MARGIN_MINUTES,
    request_enabled: requestCount.enabled,
    request_threshold: requestCount.threshold,
    request_penalty: requestCount.penalty,
    velocity_enabled: sustainedVelocity.enabled,
    velocity_peak_rpm: sustainedVelocity.peakRequestsPerMinute,
    velocity_minutes: sustainedVelocity.minutes,
    velocity_penalty: sustainedVelocity.penalty,
    sessions_enabled: sessionCount.enabled,
    sessions_threshold: sessionCount.threshold,
    sessions_penalty: sessionCount.penalty,
    low_enabled: lowReputation.enabled,
    low_threshold: lowReputation.threshold,
    ban_enabled: p.ban.enabled,
    ban_min_incidents: p.ban.minIncidents,
    ban_days: p.ban.days,
    extra_allowlist: p.ban.extraAllowlist,
    findings_limit: p.findingsLimit,
  };
}

interface AnalyseRow extends BanSummaryRow {
  since: Date;
  until: Date;
  analysed: number;
  flagged: number;
  updated: number;
  /** Ban candidates whose last_ip_address is not an IP address. */
  invalid_ips: number;
  rule_matches: Record<string, number>;
  findings: Record<string, unknown>[];
}

export const behavioralAnalysis = defineJob({
  name: "behavioral_analysis",
  description: "Flags fingerprints that break the behaviour rules; bans the IPs of repeat offenders",
  payload,
  async run({ db, payload: p, enforce, signal, logger }) {
    const { rows } = await db.query<AnalyseRow>(analyseSql, [JSON.stringify(settingsFor(p))]);
    const row = rows[0]!;
    const bans = summariseBans(row);
    const expired = await removeExpiredBans(db, { enforce, batchSize: p.cleanupBatchSize, signal });

    const details: Record<string, unknown> = {
      window: { since: row.since, until: row.until },
      analysed: row.analysed,
      flagged: row.flagged,
      ruleMatches: row.rule_matches,
      ...bans.details,
      [enforce ? "expiredBansRemoved" : "expiredBansToRemove"]: expired,
    };
    if (!enforce) {
      details.findingsTotal = row.flagged;
      details.findings = row.findings;
      logger.info({ findings: row.findings, findingsTotal: row.flagged, bans: bans.details.bannedIps }, "dry run findings (nothing changed)");
    }
    const summary = enforce
      ? `analysed ${row.analysed} fingerprint(s): flagged ${row.flagged}, banned ${bans.newBans} IP(s), skipped ${bans.skipped}; removed ${expired} expired ban(s)`
      : `dry run, nothing changed: analysed ${row.analysed} fingerprint(s): would flag ${row.flagged}, would ban ${bans.newBans} IP(s), would skip ${bans.skipped}; would remove ${expired} expired ban(s)`;
    return {
      itemsProcessed: row.flagged + bans.newBans,
      itemsFailed: row.invalid_ips,
      message: row.invalid_ips > 0 ? `${summary}; ${row.invalid_ips} fingerprint(s) with an invalid last_ip_address not banned` : summary,
      details,
    };
  },
});
