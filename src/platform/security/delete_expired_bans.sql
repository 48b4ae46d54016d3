-- Deletes expired, non-permanent bans; at most $1 rows per statement (repeatInBatches).
-- Reads the partial index banned_ips_expires_at_idx. Every ban was recorded in
-- scheduler.ban_offences when it was made (by ban_ips, or by the trigger of
-- sql/008_security_memory.sql for bans written directly), so a returning offender is still
-- escalated after its row is gone.
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
