-- A full orphan scan that started at $1 completed: restart the staleness clock and clear a
-- request made before it started (a TRUNCATE during the scan asks for another one).
insert into scheduler.cleanup_state as s (name, last_full_scan_at, updated_at)
values ('database_cleanup.orphaned_logs', $1, now())
on conflict (name) do update set
  last_full_scan_at = excluded.last_full_scan_at,
  full_scan_requested_at = case when s.full_scan_requested_at <= excluded.last_full_scan_at then null else s.full_scan_requested_at end,
  updated_at = now()
