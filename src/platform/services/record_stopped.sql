-- The process is gone (or never was). A `failed` service stays failed.
update services
set status = case when status = 'failed' then 'failed' else 'stopped' end,
    status_changed_at = now(), pid = null, process_start_ticks = null, boot_id = null,
    stopped_at = now(), last_error = coalesce($3, last_error)
where name = $1 and host = $2
