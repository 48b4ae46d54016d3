-- Bans for the CLI, newest first; $1 = only bans in force, $2 = row limit.
select
  b.ip_address,
  b.reason,
  b.ban_source,
  b.banned_at,
  b.expires_at,
  b.is_permanent,
  b.ban_count,
  b.source_fingerprint,
  (b.is_permanent or b.expires_at is null or b.expires_at > now()) as active,
  coalesce(o.offences, b.ban_count) as offences
from banned_ips b
left join scheduler.ban_offences o on o.ip_address = b.ip_address
where not $1::boolean or b.is_permanent or b.expires_at is null or b.expires_at > now()
order by b.banned_at desc, b.ip_address
limit $2
