-- At reconciler start: services of this host that the allowlist refused (status failed) are
-- tried once more, since a restart is how a changed allowlist takes effect. Refused again,
-- they are marked failed again; no loop.
update services
set status = 'stopped', status_changed_at = now(), consecutive_failures = 0, backoff_until = null, last_error = null
where host = $1 and status = 'failed' and desired_status = 'enabled' and starts_with(last_error, $2)
returning name
