-- Marks a service `starting` under a new instance id before its process exists, and returns
-- what to run. Nothing is claimed if it was disabled, marked failed or removed meanwhile.
-- $1 name, $2 host, $3 instance id, $4 1 for a restart (counted) or 0 for a first start
update services
set status = 'starting', status_changed_at = now(), instance_id = $3::uuid,
    pid = null, process_start_ticks = null, boot_id = null,
    started_at = now(), last_exit_code = null, last_exit_signal = null,
    restart_count = restart_count + $4::int
where name = $1 and host = $2 and desired_status = 'enabled' and status <> 'failed'
returning name, host, command, args, cwd, env, port, consecutive_failures
