-- The manual ban and unban (the CLI's `ban` and `unban`, and SQL callers), each recording
-- what it changed in the audit trail (scheduler.audit, sql/engine/030) in the same call. Edited
-- in place (a repeatable file, see src/engine/db/repeatables.ts); first defined in
-- sql/platform/003, whose signatures are dropped here for the ones that take the actor (a
-- second function beside the old one would make the old calls ambiguous). Calls without the
-- actor work as before; the actor is then the database role.

drop function if exists scheduler.ban_ip(text, text, interval, boolean, text);
create or replace function scheduler.ban_ip(
  p_ip text,
  p_reason text,
  p_duration interval,
  p_permanent boolean default false,
  p_source text default 'manual',
  p_actor text default null
) returns table (
  ip_address text, requested text, outcome text, reason text, repeat_offences int,
  ban_count int, expires_at timestamptz, is_permanent boolean, allowlisted_by text
)
language plpgsql volatile as $$
declare
  b record;
begin
  for b in
    select * from scheduler.ban_ips(array[p_ip], array[p_reason], p_source, p_duration,
      p_permanent => p_permanent, p_escalate => false, p_extend_active => true)
  loop
    -- Only a ban that changed something: refused and skipped ones leave the trail alone.
    if b.outcome in ('created', 'renewed', 'extended', 'made_permanent') then
      perform scheduler.audit_record(coalesce(p_actor, current_user), 'ban', b.ip_address,
        jsonb_build_object('outcome', b.outcome, 'reason', b.reason, 'expires_at', b.expires_at,
                           'permanent', b.is_permanent, 'ban_count', b.ban_count, 'source', p_source));
    end if;
    ip_address := b.ip_address; requested := b.requested; outcome := b.outcome; reason := b.reason;
    repeat_offences := b.repeat_offences; ban_count := b.ban_count; expires_at := b.expires_at;
    is_permanent := b.is_permanent; allowlisted_by := b.allowlisted_by;
    return next;
  end loop;
end $$;

-- Lifts a ban (the address as given or its canonical form). p_forget also clears its offence
-- history, so a later automated ban starts again at the base duration.
drop function if exists scheduler.unban_ip(text, boolean);
create or replace function scheduler.unban_ip(p_ip text, p_forget boolean default false, p_actor text default null)
returns boolean language plpgsql volatile as $$
declare
  v_lifted int;
  v_forgotten int;
begin
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
  select (select count(*) from lifted), (select count(*) from forgotten) into v_lifted, v_forgotten;
  if v_lifted = 0 and v_forgotten = 0 then
    return false;
  end if;
  perform scheduler.audit_record(coalesce(p_actor, current_user), 'unban', coalesce(host(scheduler.parse_ip(p_ip)), p_ip),
    jsonb_build_object('lifted', v_lifted > 0, 'forget', p_forget, 'offences_forgotten', v_forgotten > 0));
  return true;
end $$;
