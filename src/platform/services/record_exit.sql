-- How a process we spawned ended, as its parent saw it.
update services set last_exit_code = $3, last_exit_signal = $4
where name = $1 and instance_id = $2::uuid
