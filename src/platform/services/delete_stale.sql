-- cleanup-db: forget a disabled service whose process is gone. Not if it was re-enabled or
-- restarted since the pass looked ($3: the pid the pass saw).
delete from services
where name = $1 and host = $2 and desired_status = 'disabled' and pid is not distinct from $3
returning name
