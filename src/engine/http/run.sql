-- One run with everything recorded about it, and the host of the node that ran it ($1: id).
select r.id, r.job_id, r.job_name, r.task, r.attempt, r.node_id, n.host as node_host,
       r.scheduled_for, r.started_at, r.finished_at, r.duration_ms, r.status, r.error,
       r.items_processed, r.items_failed, r.message, r.dry_run, r.payload, r.details
from scheduler.job_runs r
left join scheduler.nodes n on n.node_id = r.node_id
where r.id = $1
