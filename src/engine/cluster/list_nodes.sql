-- Nodes for `systemprompt-scheduler nodes`: state judged with the caller's dead threshold ($1,
-- ms) the same way rescue judges it, and what each node holds right now.
select
  n.node_id,
  n.host,
  n.pid,
  n.version,
  n.started_at,
  n.last_heartbeat_at,
  round(extract(epoch from now() - n.last_heartbeat_at) * 1000)::bigint as silent_ms,
  case
    when n.stopped_at is not null then 'stopped'
    when n.dead_at is not null then 'dead'
    when greatest(n.last_heartbeat_at, pg_postmaster_start_time()) < now() - make_interval(secs => $1::float8 / 1000) then 'dead'
    else 'alive'
  end as state,
  n.dead_at as rescued_at,
  n.dead_by as rescued_by,
  n.stopped_at,
  n.worker_pool_id,
  n.crontab_rejected_at,
  n.crontab_error,
  n.clock_skew_ms,
  coalesce(held.n, 0)::int as running_jobs,
  (select count(*) from scheduler.job_runs r where r.node_id = n.node_id and r.status = 'running')::int as running_runs
from scheduler.nodes n
-- graphile-worker's jobs are read once for all nodes (there is no index on locked_by to probe).
left join (select j.locked_by, count(*) as n from graphile_worker.jobs j where j.locked_by is not null group by j.locked_by) held
  on held.locked_by = n.worker_pool_id
where $2::boolean or (n.stopped_at is null and (n.dead_at is null or n.dead_at > now() - interval '1 day'))
order by n.stopped_at is not null, n.dead_at is not null, n.host, n.started_at;
