-- Every service (of one host when $1 is not null), for people and scripts.
select name, module_name, host, port, desired_status, status, pid, command, args, cwd,
       restart_count, consecutive_failures, last_exit_code, last_exit_signal, last_error,
       backoff_until, started_at, stopped_at, status_changed_at, created_at, updated_at
from services
where $1::text is null or host = $1
order by host, name
