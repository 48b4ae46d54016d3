-- Ends open sessions idle for longer than $1 hours; at most $2 rows per statement.
-- Reads the partial index user_sessions_open_idle_idx, so its cost follows the rows it closes.
with idle as (
  select session_id
  from user_sessions
  where ended_at is null
    and last_activity_at < now() - $1::float8 * interval '1 hour'
  order by last_activity_at
  limit $2
  for update skip locked
)
update user_sessions s
set ended_at = now()
from idle
where s.session_id = idle.session_id
