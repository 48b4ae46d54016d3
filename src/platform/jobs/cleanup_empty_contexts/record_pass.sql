-- After an enforcing run: every context created before $1 has been checked; $2 is the start
-- of the full scan this run made, or null. The watermark never moves back (a run with a
-- longer retention has an earlier cutoff).
insert into scheduler.cleanup_state as s (name, scanned_through, last_full_scan_at, updated_at)
values ('cleanup_empty_contexts', $1, $2, now())
on conflict (name) do update set
  scanned_through = greatest(s.scanned_through, excluded.scanned_through),
  last_full_scan_at = coalesce(excluded.last_full_scan_at, s.last_full_scan_at),
  updated_at = now()
