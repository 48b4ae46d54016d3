-- behavioral_analysis in one statement, so a run is atomic without a transaction in JS.
-- $1: the run's settings as JSON (see index.ts, settingsFor). With enforce = false the
-- UPDATE, the bans and the watermark write nothing and the same findings are reported.
--
-- Which fingerprints: seen in the last window_minutes AND after the previous enforced run
-- (scheduler.analysis_watermarks), less a late-commit margin: the platform stamps last_seen_at
-- inside its transaction, so a row committed after the previous run's snapshot can carry a
-- last_seen_at before that run's watermark. The margin is read again on every run; what keeps
-- a second run from penalising twice there is scheduler.penalised_fingerprints: a fingerprint
-- penalised at a last_seen_at is skipped until its last_seen_at moves past it. Without a
-- watermark (first run, or deleted to analyse again from scratch) that memory is ignored.
-- Rules, in order (docs/jobs.md, behavioral_analysis): penalties of all matching rules add up, the first match names the
-- flag_reason, and the low-reputation rule reads the score from before this run.
with settings as (
  select * from jsonb_to_record($1::jsonb) as s(
    enforce boolean,
    window_minutes int,
    late_commit_margin_minutes int,
    request_enabled boolean, request_threshold bigint, request_penalty int,
    velocity_enabled boolean, velocity_peak_rpm real, velocity_minutes int, velocity_penalty int,
    sessions_enabled boolean, sessions_threshold int, sessions_penalty int,
    low_enabled boolean, low_threshold int,
    ban_enabled boolean, ban_min_incidents int, ban_days int, extra_allowlist cidr[],
    findings_limit int)
),
bounds as (
  select
    case
      when w.analysed_through is null then now() - make_interval(mins => s.window_minutes)
      else greatest(now() - make_interval(mins => s.window_minutes), w.analysed_through)
           - make_interval(mins => s.late_commit_margin_minutes)
    end as since,
    now() as until,
    w.analysed_through as watermark
  from settings s
  left join scheduler.analysis_watermarks w on w.job_name = 'behavioral_analysis'
),
analysed as (
  select
    f.fingerprint_hash,
    f.last_seen_at,
    f.reputation_score,
    f.abuse_incidents,
    f.last_ip_address,
    f.total_request_count,
    f.sustained_high_velocity_minutes,
    f.total_session_count,
    s.request_enabled and f.total_request_count > s.request_threshold as hit_requests,
    s.velocity_enabled and f.peak_requests_per_minute > s.velocity_peak_rpm
      and f.sustained_high_velocity_minutes >= s.velocity_minutes as hit_velocity,
    s.sessions_enabled and f.total_session_count > s.sessions_threshold as hit_sessions,
    s.low_enabled and f.reputation_score < s.low_threshold and not f.is_flagged as hit_low
  from fingerprint_reputation f
  cross join settings s
  cross join bounds b
  left join scheduler.penalised_fingerprints p on p.fingerprint_hash = f.fingerprint_hash
  where f.last_seen_at > b.since
    and f.last_seen_at <= b.until
    and (p.fingerprint_hash is null or b.watermark is null or f.last_seen_at > p.last_seen_at)
),
findings as (
  select
    a.*,
    case
      when a.hit_requests then 'request_count_exceeded_100'
      when a.hit_velocity then 'sustained_velocity_10rpm_1hr'
      when a.hit_sessions then 'session_count_exceeded_10'
      else 'reputation_score_below_threshold'
    end as reason,
    case
      when a.hit_requests then a.total_request_count
      when a.hit_velocity then a.sustained_high_velocity_minutes
      when a.hit_sessions then a.total_session_count
      else a.reputation_score
    end as evidence,
    case when a.hit_requests then s.request_penalty else 0 end
      + case when a.hit_velocity then s.velocity_penalty else 0 end
      + case when a.hit_sessions then s.sessions_penalty else 0 end as penalty
  from analysed a
  cross join settings s
  where a.hit_requests or a.hit_velocity or a.hit_sessions or a.hit_low
),
flagged as (
  -- Score and incidents are computed from the row as it is when locked, not from the
  -- snapshot, so a concurrent change by the platform is not overwritten.
  update fingerprint_reputation f
  set is_flagged = true,
      flag_reason = x.reason,
      flagged_at = now(),
      reputation_score = least(100, greatest(0, f.reputation_score - x.penalty)),
      abuse_incidents = f.abuse_incidents + 1,
      last_abuse_at = now(),
      updated_at = now()
  from findings x
  cross join settings s
  where s.enforce
    and f.fingerprint_hash = x.fingerprint_hash
  returning f.fingerprint_hash
),
-- The activity each penalty was for: the last_seen_at this run read.
remembered as (
  insert into scheduler.penalised_fingerprints as p (fingerprint_hash, last_seen_at, penalised_at)
  select x.fingerprint_hash, x.last_seen_at, now()
  from findings x
  cross join settings s
  where s.enforce
  on conflict (fingerprint_hash) do update set
    last_seen_at = greatest(p.last_seen_at, excluded.last_seen_at),
    penalised_at = excluded.penalised_at
),
-- What no later run can read again: its window starts at this run's watermark less the margin
-- or later. This run's own findings are left to `remembered` (one statement must not both
-- update and delete a row).
forgotten as (
  delete from scheduler.penalised_fingerprints p
  using bounds b, settings s
  where s.enforce
    and p.last_seen_at <= b.until - make_interval(mins => s.late_commit_margin_minutes)
    and not exists (select 1 from findings x where x.fingerprint_hash = p.fingerprint_hash)
),
-- Ban candidates: every analysed fingerprint with at least ban_min_incidents incidents, this
-- run's included (the original banned analysed fingerprints with 3 stored incidents; this also
-- catches the third incident at once). One candidate per address: ban_ips keeps the first, so
-- the fingerprint with the most incidents speaks for it.
candidates as (
  select c.last_ip_address, c.fingerprint_hash, c.incidents
  from (
    select a.last_ip_address, a.fingerprint_hash,
           a.abuse_incidents + (a.hit_requests or a.hit_velocity or a.hit_sessions or a.hit_low)::int as incidents
    from analysed a
    where a.last_ip_address is not null
  ) c
  cross join settings s
  where s.ban_enabled
    and c.incidents >= s.ban_min_incidents
),
bans as (
  select b.*
  from settings s
  cross join lateral scheduler.ban_ips(
    (select array_agg(c.last_ip_address order by c.incidents desc, c.fingerprint_hash) from candidates c),
    (select array_agg('Automated: repeated behavioral violations'::text order by c.incidents desc, c.fingerprint_hash) from candidates c),
    'behavioral_analysis',
    make_interval(days => s.ban_days),
    p_fingerprints => (select array_agg(c.fingerprint_hash order by c.incidents desc, c.fingerprint_hash) from candidates c),
    p_extra_allowlist => coalesce(s.extra_allowlist, '{}'),
    p_dry_run => not s.enforce) b
  where exists (select 1 from candidates)
),
watermark as (
  insert into scheduler.analysis_watermarks (job_name, analysed_through)
  select 'behavioral_analysis', b.until
  from bounds b
  cross join settings s
  where s.enforce
  on conflict (job_name) do update set analysed_through = excluded.analysed_through
)
select
  (select since from bounds) as since,
  (select until from bounds) as until,
  (select count(*) from analysed)::int as analysed,
  (select count(*) from findings)::int as flagged,
  (select count(*) from flagged)::int as updated,
  (select jsonb_build_object(
     'request_count_exceeded_100', count(*) filter (where hit_requests),
     'sustained_velocity_10rpm_1hr', count(*) filter (where hit_velocity),
     'session_count_exceeded_10', count(*) filter (where hit_sessions),
     'reputation_score_below_threshold', count(*) filter (where hit_low))
   from findings) as rule_matches,
  (select count(*) from candidates)::int as ban_candidates,
  (select count(*) from candidates where scheduler.parse_ip(last_ip_address) is null)::int as invalid_ips,
  (select coalesce(jsonb_object_agg(outcome, n), '{}') from (select outcome, count(*) as n from bans group by outcome) o) as ban_outcomes,
  (select count(*) from bans where repeat_offences > 0 and outcome in ('created', 'renewed'))::int as escalated,
  (select coalesce(jsonb_agg(jsonb_build_object('ip', ip_address, 'outcome', outcome, 'expiresAt', expires_at, 'banCount', ban_count, 'allowlistedBy', allowlisted_by)), '[]')
   -- a dry run lists up to findings_limit addresses; a real run keeps its history row small
   from (select * from bans order by outcome, ip_address
         limit (select case when enforce then least(findings_limit, 100) else findings_limit end from settings)) l) as ban_list,
  (select coalesce(jsonb_agg(jsonb_build_object(
     'fingerprint', fingerprint_hash,
     'rule', reason,
     'rules', array_remove(array[
        case when hit_requests then 'request_count_exceeded_100' end,
        case when hit_velocity then 'sustained_velocity_10rpm_1hr' end,
        case when hit_sessions then 'session_count_exceeded_10' end,
        case when hit_low then 'reputation_score_below_threshold' end], null),
     'evidence', evidence,
     'scoreBefore', reputation_score,
     'scoreAfter', least(100, greatest(0, reputation_score - penalty)),
     'incidentsAfter', abuse_incidents + 1,
     'ip', last_ip_address)), '[]')
   from (select * from findings where not (select enforce from settings) order by fingerprint_hash limit (select findings_limit from settings)) l) as findings
