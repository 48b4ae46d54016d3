-- One manual ban through the ban policy, recorded in the audit trail when it changed
-- something (sql/platform/repeatable/manual_bans.sql): $1 ip, $2 reason, $3 duration in
-- seconds (null when permanent), $4 permanent, $5 source, $6 who asks.
select ip_address, requested, outcome, reason, repeat_offences, ban_count, expires_at, is_permanent, allowlisted_by
from scheduler.ban_ip($1, $2, make_interval(secs => $3::float8), $4, $5, $6)
