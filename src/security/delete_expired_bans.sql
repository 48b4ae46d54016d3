-- Deletes expired, non-permanent bans; at most $1 rows per statement (repeatInBatches).
-- Reads the partial index banned_ips_expires_at_idx. The offence history in
-- scheduler.ban_offences stays, so a returning offender is still escalated.
with doomed as (
  select ip_address
  from banned_ips
  where not is_permanent
    and expires_at <= now()
  order by expires_at
  limit $1
  for update skip locked
)
delete from banned_ips b
using doomed
where b.ip_address = doomed.ip_address
