-- Every service of one host, desired and observed state, as the reconciler reads it.
select name, module_name, host, command, args, cwd, env, port, desired_status, status, pid,
       process_start_ticks::text as process_start_ticks, boot_id, instance_id::text as instance_id,
       restart_count, consecutive_failures, last_exit_code, last_exit_signal, last_error,
       backoff_until, started_at, stopped_at, status_changed_at, xmin::text as version
from services
where host = $1
order by name
