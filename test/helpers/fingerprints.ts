// Seeding and reading fingerprint_reputation for the behavioral_analysis tests.
import type { Queryable } from "../../src/engine/db/pool.ts";

export interface Fingerprint {
  hash: string;
  seenMinutesAgo?: number;
  requests?: number;
  peak?: number;
  sustained?: number;
  sessions?: number;
  flagged?: boolean;
  score?: number;
  incidents?: number;
  ip?: string | null;
}

export async function resetFingerprints(db: Queryable): Promise<void> {
  await db.query("truncate fingerprint_reputation, banned_ips, scheduler.ban_offences, scheduler.analysis_watermarks, scheduler.penalised_fingerprints");
}

export async function seedFingerprints(db: Queryable, fingerprints: Fingerprint[]): Promise<void> {
  const rows = fingerprints.map((f) => ({
    fingerprint_hash: f.hash,
    seen_minutes_ago: f.seenMinutesAgo ?? 5,
    total_request_count: f.requests ?? 0,
    peak_requests_per_minute: f.peak ?? 0,
    sustained_high_velocity_minutes: f.sustained ?? 0,
    total_session_count: f.sessions ?? 0,
    is_flagged: f.flagged ?? false,
    reputation_score: f.score ?? 50,
    abuse_incidents: f.incidents ?? 0,
    last_ip_address: f.ip ?? null,
  }));
  await db.query(
    `insert into fingerprint_reputation (fingerprint_hash, first_seen_at, last_seen_at, total_request_count, peak_requests_per_minute,
       sustained_high_velocity_minutes, total_session_count, is_flagged, reputation_score, abuse_incidents, last_ip_address, updated_at)
     select fingerprint_hash, now() - interval '30 days', now() - make_interval(secs => seen_minutes_ago * 60), total_request_count,
       peak_requests_per_minute, sustained_high_velocity_minutes, total_session_count, is_flagged, reputation_score, abuse_incidents,
       last_ip_address, now() - interval '1 day'
     from jsonb_to_recordset($1::jsonb) as x(fingerprint_hash text, seen_minutes_ago float8, total_request_count bigint,
       peak_requests_per_minute real, sustained_high_velocity_minutes int, total_session_count int, is_flagged boolean,
       reputation_score int, abuse_incidents int, last_ip_address text)`,
    [JSON.stringify(rows)],
  );
}

export interface FingerprintState {
  is_flagged: boolean;
  flag_reason: string | null;
  reputation_score: number;
  abuse_incidents: number;
  flagged_at: Date | null;
  last_abuse_at: Date | null;
}

export async function fingerprintState(db: Queryable, hash: string): Promise<FingerprintState> {
  const { rows } = await db.query<FingerprintState>(
    "select is_flagged, flag_reason, reputation_score, abuse_incidents, flagged_at, last_abuse_at from fingerprint_reputation where fingerprint_hash = $1",
    [hash],
  );
  return rows[0]!;
}
