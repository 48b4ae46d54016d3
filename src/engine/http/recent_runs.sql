-- The last 30 runs of every schedule, oldest first, for the dashboard's sparklines, as JSON
-- text per schedule (/api/schedules).
--
-- The runs are kept in scheduler.recent_runs_cache for the job_stats.last_change they were
-- computed at (a run recorded, finished or pruned bumps it): only the schedules whose jobs
-- changed since are read from job_runs, each a short backward walk along
-- job_runs_job_started_id_idx (which holds every column read here), and stored again. Two
-- requests at once may both recompute one; an older answer never replaces a newer one.
with stale as (
  select s.job_name, st.last_change
  from scheduler.schedules s
  join scheduler.job_stats st on st.job_name = s.job_name
  left join scheduler.recent_runs_cache c on c.job_name = s.job_name
  where c.job_change is distinct from st.last_change
),
fresh as (
  select stale.job_name, stale.last_change,
         coalesce((select json_agg(json_build_object('id', r.id, 'status', r.status, 'started_at', r.started_at, 'duration_ms', r.duration_ms)
                                   order by r.started_at, r.id)
                   from (select id, status, started_at, duration_ms from scheduler.job_runs
                         where job_name = stale.job_name
                         order by started_at desc, id desc
                         limit 30) r), '[]'::json) as runs
  from stale
),
stored as (
  insert into scheduler.recent_runs_cache as c (job_name, job_change, runs)
  select job_name, last_change, runs from fresh
  on conflict (job_name) do update set job_change = excluded.job_change, runs = excluded.runs
  where c.job_change < excluded.job_change
)
select s.job_name, coalesce(f.runs, c.runs)::text as runs
from scheduler.schedules s
left join fresh f on f.job_name = s.job_name
left join scheduler.recent_runs_cache c on c.job_name = s.job_name

