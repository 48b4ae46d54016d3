-- The last 30 runs of every schedule, oldest first, for the dashboard's sparklines: one
-- query for all schedules, each a short backward walk along job_runs_job_name_started_idx.
select s.job_name,
       json_agg(json_build_object('id', r.id, 'status', r.status, 'started_at', r.started_at, 'duration_ms', r.duration_ms)
                order by r.started_at, r.id) as runs
from scheduler.schedules s
cross join lateral (
  select id, status, started_at, duration_ms from scheduler.job_runs
  where job_name = s.job_name
  order by started_at desc, id desc
  limit 30
) r
group by s.job_name
