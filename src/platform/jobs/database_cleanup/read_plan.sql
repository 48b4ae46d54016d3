-- The run's clock, read once so every step and batch uses the same edges: logs older than $1
-- days go by age; orphaned logs found by a full scan only when older than $3 minutes (see
-- delete_logs_of_users.sql); a full scan is stale when none completed in $2 days.
-- Timestamps go out as text so no microsecond is lost on the way back in.
select
  now()::text as now,
  (now() - $1::float8 * interval '1 day')::text as log_cutoff,
  (now() - $3::float8 * interval '1 minute')::text as scan_grace_cutoff,
  s.last_full_scan_at::text as last_full_scan_at,
  s.full_scan_requested_at::text as full_scan_requested_at,
  coalesce(s.last_full_scan_at < now() - $2::float8 * interval '1 day', false) as full_scan_stale
from (values (1)) as one
left join scheduler.cleanup_state s on s.name = 'database_cleanup.orphaned_logs'
