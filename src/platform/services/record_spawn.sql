-- The identity of the process just spawned: pid, its start time and the boot it belongs to.
update services
set pid = $3, process_start_ticks = $4::bigint, boot_id = $5
where name = $1 and instance_id = $2::uuid and status = 'starting'
returning name
