-- Dry run: how many open sessions are idle for longer than $1 hours.
select count(*)::bigint as n
from user_sessions
where ended_at is null
  and last_activity_at < now() - $1::float8 * interval '1 hour'
