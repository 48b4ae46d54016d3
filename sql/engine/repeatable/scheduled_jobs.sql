-- public.scheduled_jobs: every crontab entry as the nodes last loaded it, with its pause, last
-- and next run, counts, lateness and missed ticks. Edited in place (a repeatable file, see
-- src/engine/db/repeatables.ts): `create or replace view` may only append columns, so a new
-- column goes at the end, and dropping or renaming one needs a numbered migration that drops
-- the view first. Columns, in order: those of 002, then (007) duration, counts, pause details,
-- payload, (020) zone, overlap, jitter, skipped ticks, (021) late, late_since, grace, missed.
-- Missed and skipped ticks are not runs: last_run, last_status and run_count leave them out.
create or replace view public.scheduled_jobs as
select
  s.job_name,
  s.task,
  s.schedule,
  p.job_name is null as enabled,
  last_run.started_at as last_run,
  case when p.job_name is null then scheduler.schedule_next(s, now()) end as next_run,
  last_run.status as last_status,
  last_done.error as last_error,
  coalesce(st.pruned_runs, 0) + counts.runs as run_count,
  s.description,
  last_done.duration_ms as last_duration_ms,
  coalesce(st.pruned_successes, 0) + counts.successes as success_count,
  coalesce(st.pruned_failures, 0) + counts.failures as failure_count,
  p.paused_at,
  s.payload,
  p.job_name as paused_as,
  p.paused_by,
  p.reason as pause_reason,
  s.timezone,
  s.overlap,
  s.jitter_ms,
  coalesce(st.pruned_skipped, 0) + counts.skipped as skipped_count,
  p.job_name is null and overdue.tick is not null as late,
  case when p.job_name is null then overdue.tick end as late_since,
  s.grace_ms,
  coalesce(st.pruned_missed, 0) + counts.missed as missed_count
from scheduler.schedules s
left join lateral (
  -- The entry's own pause wins over its task's.
  select pj.* from scheduler.paused_jobs pj
  where pj.job_name in (s.job_name, s.task)
  order by pj.job_name = s.job_name desc
  limit 1
) p on true
left join scheduler.job_stats st on st.job_name = s.job_name
left join lateral (
  select r.started_at, r.status from scheduler.job_runs r
  where r.job_name = s.job_name and r.status not in ('skipped', 'missed')
  order by r.started_at desc
  limit 1
) last_run on true
left join lateral (
  select r.error, r.duration_ms from scheduler.job_runs r
  where r.job_name = s.job_name and r.status not in ('running', 'skipped', 'missed')
  order by r.started_at desc
  limit 1
) last_done on true
cross join lateral (
  select count(*) filter (where r.status not in ('skipped', 'missed')) as runs,
         count(*) filter (where r.status = 'success') as successes,
         count(*) filter (where r.status in ('failed', 'abandoned')) as failures,
         count(*) filter (where r.status = 'skipped') as skipped,
         count(*) filter (where r.status = 'missed') as missed
  from scheduler.job_runs r
  where r.job_name = s.job_name
) counts
cross join lateral (select scheduler.overdue_tick(s, now()) as tick) overdue;
