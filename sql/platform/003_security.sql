-- The security jobs' reference lists and the one ban policy (SPEC §3).
-- Every automated or manual ban goes through scheduler.ban_ips, so its rules hold everywhere:
-- upsert on banned_ips(ip_address), never shorten or un-permanent a permanent ban, never ban an
-- allowlisted address, never re-ban an IP under an active ban, escalate repeat offenders.
-- The lists below are operator-editable with plain SQL; the jobs read them at every run.

-- Addresses that are never banned, besides the built-in reserved ranges (scheduler.reserved_ranges).
create table scheduler.ip_allowlist (
  cidr cidr primary key,
  note text,
  added_at timestamptz not null default now()
);
create index ip_allowlist_cidr_idx on scheduler.ip_allowlist using gist (cidr inet_ops);

-- Cloud ranges whose traffic malicious_ip_blacklist bans on sight (rule "datacenter").
-- The original matched the text prefixes 47.79. and 47.82. (Alibaba Cloud); these are the same
-- ranges as real CIDRs. Add more with: insert into scheduler.datacenter_ranges values ('…/…', 'provider').
create table scheduler.datacenter_ranges (
  cidr cidr primary key,
  provider text,
  note text,
  added_at timestamptz not null default now()
);
create index datacenter_ranges_cidr_idx on scheduler.datacenter_ranges using gist (cidr inet_ops);
insert into scheduler.datacenter_ranges (cidr, provider, note) values
  ('47.79.0.0/16', 'Alibaba Cloud', 'original default'),
  ('47.82.0.0/16', 'Alibaba Cloud', 'original default');

-- ISO 3166-1 alpha-2 codes for malicious_ip_blacklist's rule "high-risk country" (the original's list).
create table scheduler.high_risk_countries (
  country_code text primary key check (country_code ~ '^[A-Z]{2}$'),
  note text,
  added_at timestamptz not null default now()
);
insert into scheduler.high_risk_countries (country_code, note)
select code, 'original default'
from unnest(array['BR', 'VN', 'AR', 'IQ', 'BD', 'PK', 'RU', 'VE', 'TH', 'UA', 'ID', 'MY', 'PH', 'NG', 'KE', 'EG',
                  'MA', 'DZ', 'TN', 'LY', 'SY', 'IR', 'AF', 'MM', 'KH', 'LA', 'NP', 'LK', 'KZ', 'UZ', 'AZ', 'GE']) as code;

-- One row of policy settings. Automated bans double per previous offence (like fail2ban's
-- bantime.increment) up to max_ban; offences older than forget_after no longer count.
create table scheduler.ban_policy (
  id boolean primary key default true check (id),
  max_ban interval not null default '90 days' check (max_ban > interval '0'),
  forget_after interval not null default '180 days' check (forget_after > interval '0')
);
insert into scheduler.ban_policy default values;

-- How often each address was banned. banned_ips rows are deleted when they expire (both jobs
-- clean them up), so escalation needs a memory of its own.
create table scheduler.ban_offences (
  ip_address text primary key,
  offences int not null,
  first_banned_at timestamptz not null default now(),
  last_banned_at timestamptz not null default now(),
  last_source text,
  last_reason text
);

-- behavioral_analysis analyses a fingerprint only when it was seen after the previous run:
-- a second run with no new activity penalises nobody again.
create table scheduler.analysis_watermarks (
  job_name text primary key,
  analysed_through timestamptz not null
);

-- The address in text, or null when the text is not a single IPv4/IPv6 host address. Never
-- raises, so one bad row cannot abort a set-based statement. IPv4-mapped IPv6 (::ffff:a.b.c.d)
-- becomes plain IPv4, so one client has one key.
create function scheduler.parse_ip(p_text text) returns inet
language plpgsql immutable strict parallel safe as $$
declare
  v_text text := btrim(p_text);
  v_ip inet;
begin
  -- Cheap rejection of what cannot be an address, without entering the exception block.
  if length(v_text) > 45 or v_text !~ '^[0-9A-Fa-f:.]+$' then
    return null;
  end if;
  begin
    v_ip := v_text::inet;
  exception when data_exception then
    return null;
  end;
  if v_ip <<= '::ffff:0:0/96'::cidr then
    v_ip := '0.0.0.0'::inet + (v_ip - '::ffff:0.0.0.0'::inet);
  end if;
  return v_ip;
end $$;

-- Loopback, private, shared (CGNAT), link-local and unspecified ranges, IPv4 and IPv6:
-- never a client worth banning, often our own proxies.
create function scheduler.reserved_ranges() returns cidr[]
language sql immutable parallel safe as $$
  select array['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10',
               '169.254.0.0/16', '0.0.0.0/8', '::1/128', '::/128', 'fc00::/7', 'fe80::/10']::cidr[]
$$;

-- Every range that is never banned: the reserved ranges, scheduler.ip_allowlist and a run's
-- extra CIDRs. The one definition of the allowlist, read by ban_ips and allowlisted_by.
create function scheduler.allowlist_ranges(p_extra cidr[] default '{}') returns table (cidr cidr, source text)
language sql stable parallel safe as $$
  select r, 'reserved' from unnest(scheduler.reserved_ranges()) r
  union all
  select a.cidr, 'allowlist' from scheduler.ip_allowlist a
  union all
  select r, 'payload' from unnest(coalesce(p_extra, '{}'::cidr[])) r
$$;

-- Why an address must not be banned ('reserved 10.0.0.0/8', 'allowlist 203.0.113.0/24',
-- 'payload …'; the most specific range), or null when it may be.
create function scheduler.allowlisted_by(p_ip inet, p_extra cidr[] default '{}') returns text
language sql stable parallel safe as $$
  select r.source || ' ' || r.cidr::text
  from scheduler.allowlist_ranges(p_extra) r
  where p_ip <<= r.cidr
  order by masklen(r.cidr) desc
  limit 1
$$;

-- The ban policy, for many addresses in one statement. Inputs are parallel arrays (the first
-- occurrence of an address wins). Outcomes:
--   created             no ban row existed
--   renewed             the row had expired and is banned again (escalated when it is a repeat)
--   extended            an active ban was lengthened (only with p_extend_active: manual bans)
--   made_permanent      an active ban became permanent (p_permanent)
--   skipped_active      already under an active ban: not banned again, ban_count unchanged
--   skipped_permanent   already permanently banned: never shortened
--   skipped_allowlisted reserved range, scheduler.ip_allowlist or p_extra_allowlist
--   invalid             not an IP address
-- Duration: p_duration doubled per previous offence within ban_policy.forget_after, capped at
-- ban_policy.max_ban, when p_escalate; exactly p_duration otherwise. p_dry_run writes nothing.
-- A concurrent ban of the same address is settled by the ON CONFLICT condition, which sees the
-- latest committed row: the loser reports skipped_active.
create function scheduler.ban_ips(
  p_ips text[],
  p_reasons text[],
  p_source text,
  p_duration interval,
  p_fingerprints text[] default null,
  p_permanent boolean default false,
  p_escalate boolean default true,
  p_extend_active boolean default false,
  p_extra_allowlist cidr[] default '{}',
  p_dry_run boolean default false
) returns table (
  ip_address text, requested text, outcome text, reason text, repeat_offences int,
  ban_count int, expires_at timestamptz, is_permanent boolean, allowlisted_by text
)
language sql volatile as $$
  with policy as (
    select coalesce((select max_ban from scheduler.ban_policy), interval '90 days') as max_ban,
           coalesce((select forget_after from scheduler.ban_policy), interval '180 days') as forget_after,
           array(select r.cidr from scheduler.allowlist_ranges(p_extra_allowlist) r) as allow_ranges
  ),
  given as materialized (  -- materialized: each address is parsed once
    select u.raw, u.reason, u.fingerprint, u.ord, scheduler.parse_ip(u.raw) as addr
    from unnest(p_ips, p_reasons, coalesce(p_fingerprints, '{}'::text[])) with ordinality as u(raw, reason, fingerprint, ord)
    where u.raw is not null
  ),
  input as (
    select distinct on (coalesce(host(g.addr), g.raw)) g.*, host(g.addr) as ip
    from given g
    order by coalesce(host(g.addr), g.raw), g.ord
  ),
  known as (
    select i.*,
      b.ip_address is not null as has_row,
      coalesce(b.is_permanent, false) as row_permanent,
      b.expires_at as row_expires,
      b.ban_count as row_count,
      -- One array test per address (fast for allowlists of up to a few thousand ranges); the
      -- description is looked up only for the few that match.
      case when i.addr <<= any(policy.allow_ranges) then scheduler.allowlisted_by(i.addr, p_extra_allowlist) end as allow,
      greatest(0,
        case when o.last_banned_at > now() - policy.forget_after then o.offences else 0 end,
        case when b.banned_at > now() - policy.forget_after then b.ban_count else 0 end) as prior
    from input i
    cross join policy
    left join banned_ips b on b.ip_address = i.ip
    left join scheduler.ban_offences o on o.ip_address = i.ip
  ),
  planned as (
    select k.*,
      case when p_permanent then null
           when p_escalate then now() + least(p_duration * power(2, least(k.prior, 30))::float8, policy.max_ban)
           else now() + p_duration end as new_expires
    from known k cross join policy
  ),
  decided as (
    select p.*,
      case
        when p.addr is null then 'invalid'
        when p.allow is not null then 'skipped_allowlisted'
        when p.row_permanent then 'skipped_permanent'
        when p.has_row and (p.row_expires is null or p.row_expires > now()) then
          case when p_permanent then 'made_permanent'
               when p_extend_active and p.row_expires is not null and p.new_expires > p.row_expires then 'extended'
               else 'skipped_active' end
        when p.has_row then 'renewed'
        else 'created'
      end as outcome
    from planned p
  ),
  written as (
    insert into banned_ips as b (ip_address, reason, banned_at, expires_at, ban_count, is_permanent, source_fingerprint, ban_source)
    select d.ip, d.reason, now(), d.new_expires, d.prior + 1, p_permanent, d.fingerprint, p_source
    from decided d
    where not p_dry_run and d.outcome in ('created', 'renewed', 'extended', 'made_permanent')
    on conflict (ip_address) do update set
      reason = coalesce(excluded.reason, b.reason),
      ban_source = excluded.ban_source,
      source_fingerprint = coalesce(excluded.source_fingerprint, b.source_fingerprint),
      is_permanent = excluded.is_permanent,
      expires_at = excluded.expires_at,
      banned_at = case when b.expires_at <= now() then now() else b.banned_at end,
      ban_count = case when b.expires_at <= now() then excluded.ban_count else b.ban_count end
    where not b.is_permanent and (
      b.expires_at <= now()
      or excluded.is_permanent
      or (p_extend_active and excluded.expires_at > b.expires_at))
    returning b.ip_address, b.ban_count, b.expires_at, b.is_permanent
  ),
  remembered as (
    insert into scheduler.ban_offences as o (ip_address, offences, last_source, last_reason)
    select w.ip_address, w.ban_count, p_source, d.reason
    from written w join decided d on d.ip = w.ip_address
    where d.outcome in ('created', 'renewed')
    on conflict (ip_address) do update set
      offences = excluded.offences,
      last_banned_at = now(),
      last_source = excluded.last_source,
      last_reason = excluded.last_reason
  )
  select
    coalesce(d.ip, d.raw),
    d.raw,
    case
      when p_dry_run or d.outcome not in ('created', 'renewed', 'extended', 'made_permanent') then d.outcome
      when w.ip_address is null then 'skipped_active'  -- lost a race to a concurrent ban
      else d.outcome
    end,
    d.reason,
    d.prior,
    case
      when w.ip_address is not null then w.ban_count
      when p_dry_run and d.outcome in ('created', 'renewed') then d.prior + 1
      else d.row_count
    end,
    case
      when w.ip_address is not null then w.expires_at
      when p_dry_run and d.outcome in ('created', 'renewed', 'extended', 'made_permanent') then d.new_expires
      else d.row_expires
    end,
    case
      when w.ip_address is not null then w.is_permanent
      when p_dry_run and d.outcome in ('created', 'renewed', 'extended', 'made_permanent') then p_permanent
      else d.row_permanent
    end,
    d.allow
  from decided d
  left join written w on w.ip_address = d.ip
  order by d.ord
$$;

-- One address: the CLI's `ban`. Manual bans take the duration as given (no escalation) and
-- may lengthen an active ban.
create function scheduler.ban_ip(
  p_ip text,
  p_reason text,
  p_duration interval,
  p_permanent boolean default false,
  p_source text default 'manual'
) returns table (
  ip_address text, requested text, outcome text, reason text, repeat_offences int,
  ban_count int, expires_at timestamptz, is_permanent boolean, allowlisted_by text
)
language sql volatile as $$
  select * from scheduler.ban_ips(array[p_ip], array[p_reason], p_source, p_duration,
    p_permanent => p_permanent, p_escalate => false, p_extend_active => true)
$$;

-- Lifts a ban (the address as given or its canonical form). p_forget also clears its offence
-- history, so a later automated ban starts again at the base duration.
create function scheduler.unban_ip(p_ip text, p_forget boolean default false) returns boolean
language sql volatile as $$
  with keys as (
    select distinct k from unnest(array[p_ip, host(scheduler.parse_ip(p_ip))]) k where k is not null
  ),
  forgotten as (
    delete from scheduler.ban_offences o using keys where p_forget and o.ip_address = keys.k
    returning o.ip_address
  ),
  lifted as (
    delete from banned_ips b using keys where b.ip_address = keys.k
    returning b.ip_address
  )
  select exists (select 1 from lifted) or exists (select 1 from forgotten)
$$;
