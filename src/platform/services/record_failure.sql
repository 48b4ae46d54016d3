-- A start that failed, or a port found held by someone else. $3 status, $4 failures,
-- $5 back-off until, $6 error, $7 true to forget the recorded process (it is gone).
update services
set status = $3, status_changed_at = case when status is distinct from $3 then now() else status_changed_at end,
    consecutive_failures = $4, backoff_until = $5, last_error = $6,
    pid = case when $7::boolean then null else pid end,
    process_start_ticks = case when $7::boolean then null else process_start_ticks end,
    boot_id = case when $7::boolean then null else boot_id end
where name = $1 and host = $2
