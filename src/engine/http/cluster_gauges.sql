-- The engine's cluster-wide gauges for /metrics, in one round trip (src/engine/http/cluster-metrics.ts).
-- Per-schedule figures and the queue are the same for every node and grow with the crontab and
-- the queue: they are computed by one node per interval for the whole cluster and kept in
-- scheduler.cluster_gauges_cache. A scrape that finds the row older than $1 ms recomputes it,
-- unless another node holds the advisory lock (tried, never waited for): then the row as it is
-- serves. The rest is per node and cheap:
-- $2: SCHEDULER_NODE_DEAD_AFTER_MS (this node's judgement of which nodes are dead);
-- $3, $4: this node's id and the last missed-tick row it has counted: the missed ticks this
-- node's cron recorded since (sql/engine/021), for its node-local scheduler_job_runs_total.
with refreshed as (
  update scheduler.cluster_gauges_cache c
  set computed_at = now(),
      body = json_build_object(
        -- One array per schedule, [job, task, paused, next run, last success, late, missed]:
        -- with a large crontab this is most of the work, and arrays build and parse fastest.
        'schedules',
        (select coalesce(json_agg(json_build_array(
                  j.job_name, j.task, not j.enabled, date_part('epoch', j.next_run), date_part('epoch', st.last_success_at), j.late, j.missed_count)), '[]'::json)
         from public.scheduled_jobs j
         left join scheduler.job_stats st on st.job_name = j.job_name),
        -- graphile_worker.jobs is graphile-worker's public view of its queue.
        'queue',
        (select json_build_object(
                  'waiting', count(*) filter (where locked_at is null and attempts < max_attempts),
                  'running', count(*) filter (where locked_at is not null),
                  'failed-for-good', count(*) filter (where locked_at is null and attempts >= max_attempts))
         from graphile_worker.jobs))
  where c.computed_at <= now() - make_interval(secs => $1::float8 / 1000)
    and pg_try_advisory_xact_lock(hashtextextended('systemprompt-scheduler:cluster-gauges', 0))
  returning c.body
)
select
  coalesce((select body from refreshed), (select body from scheduler.cluster_gauges_cache)) as cluster,
  (select json_build_object(
            'alive', count(*) filter (where dead_at is null and last_heartbeat_at >= now() - make_interval(secs => $2::float8 / 1000)),
            'dead', count(*) filter (where dead_at is not null or last_heartbeat_at < now() - make_interval(secs => $2::float8 / 1000)))
   from scheduler.nodes
   where stopped_at is null) as nodes,
  (select coalesce(json_agg(json_build_object('job', m.job_name, 'task', m.task, 'n', m.n, 'last_id', m.last_id)), '[]'::json)
   from (select r.job_name, r.task, count(*) as n, max(r.id) as last_id from scheduler.job_runs r
         where r.status = 'missed' and r.node_id = $3 and r.id > $4::bigint
         group by r.job_name, r.task) m) as missed_here;
