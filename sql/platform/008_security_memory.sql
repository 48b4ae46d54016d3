-- What the security jobs must remember beyond banned_ips and the analysis watermark.
--  1. Every ban is an offence, whoever made it. scheduler.ban_ips records the bans it makes;
--     a ban the platform (or an operator, in SQL) writes into banned_ips directly was forgotten
--     once the row expired and was deleted, so a returning offender was not escalated.
--  2. Which fingerprints behavioral_analysis penalised, at which last_seen_at, so it can re-read
--     a late-commit margin before its watermark without penalising anyone twice.

-- (1) Records bans as offences: one entry per ban, i.e. per (address, time it was banned).
-- Idempotent per ban: a ban already recorded (last_banned_at at or after its time, as
-- ban_ips's own bookkeeping leaves it) only keeps the larger count, so a ban the policy made
-- is never counted twice, whichever of ban_ips and the trigger below writes first. A new ban
-- counts one more than the remembered offences still in force (ban_policy.forget_after), or
-- its own ban_count when the platform counted higher.
create function scheduler.record_offences(
  p_ips text[],
  p_banned_at timestamptz[],
  p_ban_counts int[],
  p_sources text[],
  p_reasons text[]
) returns void
language sql volatile as $$
  insert into scheduler.ban_offences as o (ip_address, offences, first_banned_at, last_banned_at, last_source, last_reason)
  select b.ip, greatest(coalesce(b.ban_count, 1), 1), b.banned_at, b.banned_at, b.source, b.reason
  from unnest(p_ips, p_banned_at, p_ban_counts, p_sources, p_reasons) as b(ip, banned_at, ban_count, source, reason)
  where b.ip is not null and b.banned_at is not null
  on conflict (ip_address) do update set
    offences = case
      when o.last_banned_at >= excluded.last_banned_at then greatest(o.offences, excluded.offences)
      else greatest(excluded.offences,
        1 + case when o.last_banned_at > now() - coalesce((select p.forget_after from scheduler.ban_policy p), interval '180 days')
                 then o.offences else 0 end)
    end,
    last_banned_at = greatest(o.last_banned_at, excluded.last_banned_at),
    last_source = case when o.last_banned_at >= excluded.last_banned_at then o.last_source else excluded.last_source end,
    last_reason = case when o.last_banned_at >= excluded.last_banned_at then o.last_reason else excluded.last_reason end
$$;

-- Recording at insert/update time rather than when our cleanup deletes an expired row: the
-- platform may delete (or overwrite) its own rows, and then our cleanup never sees them.
-- An UPDATE is a new ban when it moves banned_at, raises ban_count, or puts a lapsed row back
-- in force; lengthening an active ban or making it permanent is not a new offence. A new ban
-- that keeps its old banned_at is dated now().
-- SECURITY DEFINER: the platform's own role writes banned_ips and need not have any right on
-- the scheduler schema; a missing grant must never make a ban fail.
create function scheduler.remember_new_bans() returns trigger
language plpgsql security definer set search_path = pg_catalog, scheduler as $$
begin
  if tg_op = 'INSERT' then
    perform scheduler.record_offences(
      array_agg(n.ip_address), array_agg(n.banned_at), array_agg(n.ban_count), array_agg(n.ban_source), array_agg(n.reason))
    from inserted_bans n;
  else
    perform scheduler.record_offences(
      array_agg(n.ip_address),
      array_agg(case when o.ip_address is null or n.banned_at is distinct from o.banned_at then n.banned_at else now() end),
      array_agg(n.ban_count), array_agg(n.ban_source), array_agg(n.reason))
    from updated_bans n
    left join previous_bans o on o.ip_address = n.ip_address
    where o.ip_address is null
       or n.banned_at is distinct from o.banned_at
       or n.ban_count > o.ban_count
       or (not (o.is_permanent or o.expires_at is null or o.expires_at > now())
           and (n.is_permanent or n.expires_at is null or n.expires_at > now()));
  end if;
  return null;
end $$;

-- Statement-level, so a bulk ban costs one upsert, not one per row.
create trigger scheduler_remember_inserted_bans after insert on banned_ips
  referencing new table as inserted_bans
  for each statement execute function scheduler.remember_new_bans();
create trigger scheduler_remember_updated_bans after update on banned_ips
  referencing old table as previous_bans new table as updated_bans
  for each statement execute function scheduler.remember_new_bans();

-- Bans already in banned_ips when this migration runs, the direct ones included.
select scheduler.record_offences(array_agg(ip_address), array_agg(banned_at), array_agg(ban_count), array_agg(ban_source), array_agg(reason))
from banned_ips;

-- (2) behavioral_analysis re-reads the hour before its watermark, where a row committed after
-- the previous run's snapshot but dated before its watermark lands. A fingerprint penalised
-- at a last_seen_at is not penalised again until last_seen_at moves past it. Rows older than
-- any future run's window are pruned by the job itself.
create table scheduler.penalised_fingerprints (
  fingerprint_hash text primary key,
  last_seen_at timestamptz not null,  -- fingerprint_reputation.last_seen_at as the penalising run read it
  penalised_at timestamptz not null default now()
);
create index penalised_fingerprints_last_seen_at_idx on scheduler.penalised_fingerprints (last_seen_at);
