import { z } from "zod";
import { readSql } from "../../../engine/db/sql-file.ts";
import { summariseBans, type BanSummaryRow } from "../../security/ban-summary.ts";
import { removeExpiredBans } from "../../security/bans.ts";
import { cidrSchema, countryCodeSchema } from "../../security/ip.ts";
import { defineJob, type PayloadOf } from "../../../engine/jobs/define.ts";

export const detectSql = readSql(import.meta.url, "detect.sql");

const minSessions = (fallback: number) => z.number().int().min(1).max(2_000_000_000).default(fallback);

// Defaults are the rules docs/jobs.md lists. The datacenter ranges and high-risk countries
// live in scheduler.datacenter_ranges / scheduler.high_risk_countries; a payload can add to
// them for one run.
const payload = {
  windowHours: z.number().int().min(1).max(24 * 30).default(24),
  rules: z
    .strictObject({
      highVolume: z.strictObject({ enabled: z.boolean().default(true), minSessions: minSessions(100) }).prefault({}),
      scanner: z.strictObject({ enabled: z.boolean().default(true), minSessions: minSessions(3) }).prefault({}),
      datacenter: z
        .strictObject({
          enabled: z.boolean().default(true),
          minSessions: minSessions(1),
          extraRanges: z.array(cidrSchema).max(100_000).default([]),
        })
        .prefault({}),
      highRiskCountry: z
        .strictObject({
          enabled: z.boolean().default(true),
          minSessions: minSessions(5),
          extraCountries: z.array(countryCodeSchema).max(300).default([]),
        })
        .prefault({}),
    })
    .prefault({}),
  ban: z
    .strictObject({
      days: z.number().int().min(1).max(3650).default(14),
      extraAllowlist: z.array(cidrSchema).max(10_000).default([]),
    })
    .prefault({}),
  /** How many findings a dry run lists in its result (the total is always reported). */
  findingsLimit: z.number().int().min(0).max(100_000).default(1000),
  cleanupBatchSize: z.number().int().min(1).max(100_000).default(5000),
};

export type Payload = PayloadOf<typeof payload>;

/** The flat settings record detect.sql reads with jsonb_to_record. */
export function settingsFor(p: Payload): Record<string, unknown> {
  const { highVolume, scanner, datacenter, highRiskCountry } = p.rules;
  return {
    enforce: p.enforce,
    window_hours: p.windowHours,
    volume_enabled: highVolume.enabled,
    volume_min_sessions: highVolume.minSessions,
    scanner_enabled: scanner.enabled,
    scanner_min_sessions: scanner.minSessions,
    datacenter_enabled: datacenter.enabled,
    datacenter_min_sessions: datacenter.minSessions,
    extra_ranges: datacenter.extraRanges,
    country_enabled: highRiskCountry.enabled,
    country_min_sessions: highRiskCountry.minSessions,
    extra_countries: highRiskCountry.extraCountries,
    ban_days: p.ban.days,
    extra_allowlist: p.ban.extraAllowlist,
    findings_limit: p.findingsLimit,
  };
}

interface DetectRow extends BanSummaryRow {
  since: Date;
  until: Date;
  sessions: string;
  addresses: number;
  invalid_sessions: string;
  invalid_samples: string[];
  rule_matches: Record<string, number>;
  findings: Record<string, unknown>[];
}

export const maliciousIpBlacklist = defineJob({
  name: "malicious_ip_blacklist",
  description: "Bans IPs with high volume, scanner activity, datacenter ranges or high-risk country patterns",
  payload,
  async run({ db, payload: p, enforce, signal, logger }) {
    const { rows } = await db.query<DetectRow>(detectSql, [JSON.stringify(settingsFor(p))]);
    const row = rows[0]!;
    const bans = summariseBans(row);
    const invalidSessions = Number(row.invalid_sessions);
    const expired = await removeExpiredBans(db, { enforce, batchSize: p.cleanupBatchSize, signal });

    const details: Record<string, unknown> = {
      window: { since: row.since, until: row.until },
      sessions: Number(row.sessions),
      addresses: row.addresses,
      invalidIpSessions: invalidSessions,
      invalidIpSamples: row.invalid_samples,
      ruleMatches: row.rule_matches,
      ...bans.details,
      [enforce ? "expiredBansRemoved" : "expiredBansToRemove"]: expired,
    };
    if (!enforce) {
      details.findingsTotal = row.ban_candidates;
      details.findings = row.findings;
      logger.info({ findings: row.findings, findingsTotal: row.ban_candidates }, "dry run findings (nothing changed)");
    }
    if (invalidSessions > 0) {
      logger.warn({ invalidIpSessions: invalidSessions, samples: row.invalid_samples }, "sessions with an ip_address that is not an IP address were skipped");
    }
    const summary = enforce
      ? `checked ${row.addresses} IP(s) in ${row.sessions} session(s): banned ${bans.newBans}, skipped ${bans.skipped} of ${row.ban_candidates} flagged; removed ${expired} expired ban(s)`
      : `dry run, nothing changed: checked ${row.addresses} IP(s) in ${row.sessions} session(s): would ban ${bans.newBans}, would skip ${bans.skipped} of ${row.ban_candidates} flagged; would remove ${expired} expired ban(s)`;
    const failed = invalidSessions + bans.invalid;
    return {
      itemsProcessed: bans.newBans,
      itemsFailed: failed,
      message: failed > 0 ? `${summary}; ${failed} session(s) with an invalid IP address skipped` : summary,
      details,
    };
  },
});
