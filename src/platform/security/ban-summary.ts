import { BAN_OUTCOMES, type BanOutcome } from "./bans.ts";

// Both security jobs call scheduler.ban_ips inside their own statement and get back the
// same summary columns; this turns them into result counts and the run's details.

export interface BanSummaryRow {
  ban_candidates: number;
  /** outcome -> number of addresses */
  ban_outcomes: Partial<Record<BanOutcome, number>>;
  /** new bans of addresses banned before (longer, escalated duration) */
  escalated: number;
  /** the first addresses and what happened to them (capped) */
  ban_list: { ip: string; outcome: BanOutcome; expiresAt: string | null; banCount: number | null; allowlistedBy: string | null }[];
}

export interface BanSummary {
  /** created + renewed: the bans this run made (or would make). */
  newBans: number;
  /** Skipped because active, permanent or allowlisted. */
  skipped: number;
  /** Candidates whose address text is not an IP address. */
  invalid: number;
  details: {
    banCandidates: number;
    bans: Record<BanOutcome, number>;
    escalated: number;
    bannedIps: BanSummaryRow["ban_list"];
  };
}

export function summariseBans(row: BanSummaryRow): BanSummary {
  const bans = Object.fromEntries(BAN_OUTCOMES.map((outcome) => [outcome, Number(row.ban_outcomes[outcome] ?? 0)])) as Record<BanOutcome, number>;
  return {
    newBans: bans.created + bans.renewed,
    skipped: bans.skipped_active + bans.skipped_permanent + bans.skipped_allowlisted,
    invalid: bans.invalid,
    details: { banCandidates: row.ban_candidates, bans, escalated: row.escalated, bannedIps: row.ban_list },
  };
}
