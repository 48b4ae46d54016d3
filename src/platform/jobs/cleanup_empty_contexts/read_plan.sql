-- Where this run starts: its cutoff (contexts created before it are old enough, $1 hours),
-- where the incremental window opens, and whether a full scan is due (none completed in $2
-- days). The window reopens one hour before the last cutoff: a context whose inserting
-- transaction was still open then carries an earlier created_at than its commit, and is
-- picked up by the next run instead of waiting for a full scan.
-- Timestamps go out as text so no microsecond is lost on the way back in.
select
  now()::text as now,
  (now() - $1::float8 * interval '1 hour')::text as cutoff,
  (s.scanned_through - interval '1 hour')::text as window_start,
  s.last_full_scan_at::text as last_full_scan_at,
  coalesce(s.last_full_scan_at < now() - $2::float8 * interval '1 day', false) as full_scan_stale
from (values (1)) as one
left join scheduler.cleanup_state s on s.name = 'cleanup_empty_contexts'
