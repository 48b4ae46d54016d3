-- Dry run: how many expired, non-permanent bans the cleanup would delete.
select count(*)::bigint as n
from banned_ips
where not is_permanent
  and expires_at <= now()
