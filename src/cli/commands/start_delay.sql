-- Tick precision per schedule, for `status --json`: the 99th percentile of a tick's first attempt
-- starting after its tick, without the delay ?jitter= gave it, over the schedule's last 100 ticks.
select s.job_name,
       round(percentile_cont(0.99) within group (order by d.delay_ms))::bigint as p99_ms,
       count(d.delay_ms)::int as ticks
from scheduler.schedules s
cross join lateral (
  select greatest(0, extract(epoch from r.started_at - r.scheduled_for) * 1000 - coalesce(r.jitter_ms, 0)) as delay_ms
  from scheduler.job_runs r
  where r.job_name = s.job_name and r.scheduled_for is not null and r.attempt = 1
    and r.status not in ('missed', 'skipped')
  order by r.scheduled_for desc
  limit 100
) d
group by s.job_name
