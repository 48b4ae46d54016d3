-- The engine's cluster-wide gauges for /metrics, in one round trip (src/engine/http/cluster-metrics.ts).
-- $1: SCHEDULER_NODE_DEAD_AFTER_MS; a node silent that long counts as dead before a rescuer marks it.
-- $2, $3: this node's id and the last missed-tick row it has counted: the missed ticks this
-- node's cron recorded since (sql/engine/021), for its node-local scheduler_job_runs_total.
-- Each schedule's last success, late flag and missed count are index probes (job_runs_last_success_idx,
-- job_runs_ticks_idx, job_runs_missed_idx), so the cost does not grow with the history.
select
  (select coalesce(json_agg(json_build_object(
            'job', s.job_name,
            'task', s.task,
            'paused', p.paused,
            'next_run', case when not p.paused then extract(epoch from scheduler.schedule_next(s, now())) end,
            'last_success', extract(epoch from ls.finished_at),
            'late', not p.paused and scheduler.overdue_tick(s, now()) is not null,
            'missed', coalesce(st.pruned_missed, 0) + ms.n)), '[]'::json)
   from scheduler.schedules s
   left join scheduler.job_stats st on st.job_name = s.job_name
   -- Missed ticks are few: counted on their own partial index (job_runs_missed_idx).
   cross join lateral (select count(*) as n from scheduler.job_runs r where r.job_name = s.job_name and r.status = 'missed') ms
   -- Paused as an entry or as its task, like scheduled_jobs.enabled.
   cross join lateral (select exists (select 1 from scheduler.paused_jobs pj where pj.job_name in (s.job_name, s.task)) as paused) p
   -- One probe of the partial index job_runs_last_success_idx.
   cross join lateral (
     select max(r.finished_at) as finished_at from scheduler.job_runs r
     where r.job_name = s.job_name and r.status = 'success'
   ) ls) as schedules,
  (select json_build_object(
            'alive', count(*) filter (where dead_at is null and last_heartbeat_at >= now() - make_interval(secs => $1::float8 / 1000)),
            'dead', count(*) filter (where dead_at is not null or last_heartbeat_at < now() - make_interval(secs => $1::float8 / 1000)))
   from scheduler.nodes
   where stopped_at is null) as nodes,
  -- graphile_worker.jobs is graphile-worker's public view of its queue.
  (select json_build_object(
            'waiting', count(*) filter (where locked_at is null and attempts < max_attempts),
            'running', count(*) filter (where locked_at is not null),
            'failed-for-good', count(*) filter (where locked_at is null and attempts >= max_attempts))
   from graphile_worker.jobs) as queue,
  (select coalesce(json_agg(json_build_object('job', m.job_name, 'task', m.task, 'n', m.n, 'last_id', m.last_id)), '[]'::json)
   from (select r.job_name, r.task, count(*) as n, max(r.id) as last_id from scheduler.job_runs r
         where r.status = 'missed' and r.node_id = $2 and r.id > $3::bigint
         group by r.job_name, r.task) m) as missed_here;
