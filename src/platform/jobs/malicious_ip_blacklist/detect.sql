-- malicious_ip_blacklist in one statement: one scan of user_sessions (started in the window),
-- the four rules per address, bans through scheduler.ban_ips. $1: the run's settings as JSON
-- (see index.ts, settingsFor); with enforce = false nothing is written.
-- Address text is parsed once per distinct value, never per session, and text that is not an
-- IP address is counted, not fatal. Textual variants of one address (2001:DB8::1, 2001:db8::1,
-- ::ffff:198.51.100.7) are merged before the thresholds apply.
with settings as (
  select * from jsonb_to_record($1::jsonb) as s(
    enforce boolean,
    window_hours int,
    volume_enabled boolean, volume_min_sessions int,
    scanner_enabled boolean, scanner_min_sessions int,
    datacenter_enabled boolean, datacenter_min_sessions int, extra_ranges cidr[],
    country_enabled boolean, country_min_sessions int, extra_countries text[],
    ban_days int, extra_allowlist cidr[],
    findings_limit int)
),
bounds as (
  select now() - make_interval(hours => s.window_hours) as since, now() as until
  from settings s
),
risk_countries as (
  select country_code as code from scheduler.high_risk_countries
  union
  select unnest(coalesce(s.extra_countries, '{}'::text[])) from settings s
),
-- The only read of user_sessions.
per_text_country as (
  select
    u.ip_address as ip_text,
    u.country,
    count(*) as sessions,
    count(*) filter (where not u.is_bot) as human_sessions,
    count(*) filter (where u.is_scanner) as scanner_sessions
  from user_sessions u
  where u.started_at >= (select since from bounds)
    and u.ip_address is not null
  group by u.ip_address, u.country
),
per_text as (
  select
    t.ip_text,
    scheduler.parse_ip(t.ip_text) as ip,
    sum(t.sessions) as sessions,
    sum(t.human_sessions) as human_sessions,
    sum(t.scanner_sessions) as scanner_sessions,
    coalesce(sum(t.sessions) filter (where rc.code is not null), 0) as risk_sessions
  from per_text_country t
  left join risk_countries rc on rc.code = upper(btrim(t.country))
  group by t.ip_text
),
per_ip as (
  select ip, sum(sessions) as sessions, sum(human_sessions) as human_sessions,
         sum(scanner_sessions) as scanner_sessions, sum(risk_sessions) as risk_sessions
  from per_text
  where ip is not null
  group by ip
),
invalid as (
  select coalesce(sum(sessions), 0)::bigint as sessions,
         coalesce((array_agg(ip_text order by sessions desc, ip_text))[1:10], '{}') as samples
  from per_text
  where ip is null
),
classified as (
  select
    p.*,
    dc.cidr as datacenter_range,
    s.volume_enabled and p.human_sessions >= s.volume_min_sessions as hit_volume,
    s.scanner_enabled and p.scanner_sessions >= s.scanner_min_sessions as hit_scanner,
    dc.cidr is not null and p.sessions >= s.datacenter_min_sessions as hit_datacenter,
    s.country_enabled and p.risk_sessions >= s.country_min_sessions as hit_country
  from per_ip p
  cross join settings s
  left join lateral (
    select r.cidr
    from (
      select d.cidr from scheduler.datacenter_ranges d where d.cidr >>= p.ip
      union all
      select e from unnest(coalesce(s.extra_ranges, '{}'::cidr[])) e where e >>= p.ip
    ) r
    order by masklen(r.cidr) desc
    limit 1
  ) dc on s.datacenter_enabled
),
findings as (
  select
    c.*,
    case when c.hit_volume then 1 when c.hit_scanner then 2 when c.hit_datacenter then 3 else 4 end as rule_order,
    case
      when c.hit_volume then 'high_volume'
      when c.hit_scanner then 'scanner'
      when c.hit_datacenter then 'datacenter'
      else 'high_risk_country'
    end as rule,
    case
      when c.hit_volume then 'Automated: high request volume'
      when c.hit_scanner then 'Automated: scanner activity detected'
      when c.hit_datacenter then 'Automated: known datacenter IP range'
      else 'Automated: high-risk country pattern'
    end as reason,
    case
      when c.hit_volume then c.human_sessions
      when c.hit_scanner then c.scanner_sessions
      when c.hit_datacenter then c.sessions
      else c.risk_sessions
    end as evidence
  from classified c
  where c.hit_volume or c.hit_scanner or c.hit_datacenter or c.hit_country
),
bans as (
  select b.*
  from settings s
  cross join lateral scheduler.ban_ips(
    (select array_agg(host(f.ip) order by f.rule_order, f.ip) from findings f),
    (select array_agg(f.reason order by f.rule_order, f.ip) from findings f),
    'malicious_ip_blacklist',
    make_interval(days => s.ban_days),
    p_extra_allowlist => coalesce(s.extra_allowlist, '{}'),
    p_dry_run => not s.enforce) b
  where exists (select 1 from findings)
)
select
  (select since from bounds) as since,
  (select until from bounds) as until,
  (select coalesce(sum(sessions), 0) from per_text)::bigint as sessions,
  (select count(*) from per_ip)::int as addresses,
  (select sessions from invalid) as invalid_sessions,
  (select samples from invalid) as invalid_samples,
  (select jsonb_build_object(
     'high_volume', count(*) filter (where hit_volume),
     'scanner', count(*) filter (where hit_scanner),
     'datacenter', count(*) filter (where hit_datacenter),
     'high_risk_country', count(*) filter (where hit_country))
   from findings) as rule_matches,
  (select count(*) from findings)::int as ban_candidates,
  (select coalesce(jsonb_object_agg(outcome, n), '{}') from (select outcome, count(*) as n from bans group by outcome) o) as ban_outcomes,
  (select count(*) from bans where repeat_offences > 0 and outcome in ('created', 'renewed'))::int as escalated,
  (select coalesce(jsonb_agg(jsonb_build_object('ip', ip_address, 'outcome', outcome, 'expiresAt', expires_at, 'banCount', ban_count, 'allowlistedBy', allowlisted_by)), '[]')
   -- a dry run lists up to findings_limit addresses; a real run keeps its history row small
   from (select * from bans order by outcome, ip_address
         limit (select case when enforce then least(findings_limit, 100) else findings_limit end from settings)) l) as ban_list,
  (select coalesce(jsonb_agg(jsonb_build_object(
     'ip', host(ip),
     'rule', rule,
     'rules', array_remove(array[
        case when hit_volume then 'high_volume' end,
        case when hit_scanner then 'scanner' end,
        case when hit_datacenter then 'datacenter' end,
        case when hit_country then 'high_risk_country' end], null),
     'evidence', evidence,
     'sessions', sessions,
     'humanSessions', human_sessions,
     'scannerSessions', scanner_sessions,
     'highRiskCountrySessions', risk_sessions,
     'datacenterRange', datacenter_range)), '[]')
   from (select * from findings where not (select enforce from settings) order by rule_order, ip limit (select findings_limit from settings)) l) as findings
