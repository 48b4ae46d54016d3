-- Recent runs for /api/runs, newest first: $1 job name or null for all, $2 status or null,
-- $3 how many. The error is cut short here; /api/runs/:id has all of it.
select id, job_id, job_name, task, attempt, node_id, scheduled_for, started_at, finished_at,
       duration_ms, status, left(error, 300) as error, items_processed, items_failed, message, dry_run
from scheduler.job_runs
where ($1::text is null or job_name = $1) and ($2::text is null or status = $2)
order by started_at desc, id desc
limit $3
