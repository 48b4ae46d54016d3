-- public.scheduled_jobs: every crontab entry as the nodes last loaded it, with its pause, last
-- and next run, counts, lateness and missed ticks. Edited in place (a repeatable file, see
-- src/engine/db/repeatables.ts): `create or replace view` may only append columns, so a new
-- column goes at the end, and dropping or renaming one needs a numbered migration that drops
-- the view first. Columns, in order: those of 002, then (007) duration, counts, pause details,
-- payload, (020) zone, overlap, jitter, skipped ticks, (021) late, late_since, grace, missed,
-- (034) whether the last run was a dry run, the last success, attempts.
-- Missed and skipped ticks are not runs: last_run, last_status and run_count leave them out.
-- run_count counts runs (ticks and manual runs), attempt_count their attempts (a retry is one
-- more); success_count and failure_count count attempts by outcome. last_success is the last
-- success that did the entry's work: a dry run is one only for an entry whose own payload is a
-- dry run.
-- Counts are lifetime totals and the last runs are pointers, both kept in job_stats by
-- triggers on job_runs (sql/engine/025), so reading this view does not grow with the history.
-- Lateness and the next run: `since` is what scheduler.overdue_tick starts from (the last tick
-- handled, the entry's last change, its last resume); job_stats.due_tick is the first tick
-- after it, remembered for that `since`. While it is unchanged the calendar is not walked:
-- late is due_tick + grace + jitter < now, and the next run is due_tick itself while it is
-- still ahead. Otherwise (a tick due right now, a late entry, a memo not yet refreshed) both
-- are computed as before.
create or replace view public.scheduled_jobs as
select
  s.job_name,
  s.task,
  s.schedule,
  p.job_name is null as enabled,
  last_run.started_at as last_run,
  ticks.next_run,
  last_run.status as last_status,
  last_done.error as last_error,
  coalesce(st.runs, 0) as run_count,
  s.description,
  last_done.duration_ms as last_duration_ms,
  coalesce(st.successes, 0) as success_count,
  coalesce(st.failures, 0) as failure_count,
  p.paused_at,
  s.payload,
  p.job_name as paused_as,
  p.paused_by,
  p.reason as pause_reason,
  s.timezone,
  s.overlap,
  s.jitter_ms,
  coalesce(st.skipped, 0) as skipped_count,
  p.job_name is null and ticks.overdue as late,
  case when p.job_name is null and ticks.overdue then due.tick end as late_since,
  s.grace_ms,
  coalesce(st.missed, 0) as missed_count,
  last_run.dry_run as last_run_dry_run,
  st.last_success_at as last_success,
  coalesce(st.attempts, 0) as attempt_count
from scheduler.schedules s
-- Pauses and resumes of the entry and of its task, joined (not probed row by row); the
-- entry's own pause wins over its task's.
left join scheduler.paused_jobs pause_entry on pause_entry.job_name = s.job_name
left join scheduler.paused_jobs pause_task on pause_task.job_name = s.task
cross join lateral (select case when pause_entry.job_name is not null then pause_entry else pause_task end as pause) paused
cross join lateral (select (paused.pause).*) p
left join scheduler.resumed_jobs resume_entry on resume_entry.job_name = s.job_name
left join scheduler.resumed_jobs resume_task on resume_task.job_name = s.task
left join scheduler.job_stats st on st.job_name = s.job_name
left join scheduler.job_runs last_run on last_run.id = st.last_run_id
left join scheduler.job_runs last_done on last_done.id = st.last_done_id
-- scheduler.overdue_tick's `since`: the last tick handled, the entry's last change, its last resume.
cross join lateral (select greatest(st.last_tick, s.updated_at, resume_entry.resumed_at, resume_task.resumed_at) as since) handled
cross join lateral (
  select st.due_since is not null and st.due_since = handled.since as remembered,
         case when st.due_since = handled.since then st.due_tick
              else scheduler.schedule_next(s, handled.since + interval '1 second') end as tick
  offset 0
) due
cross join lateral (
  select coalesce(due.tick + make_interval(secs => (s.grace_ms + s.jitter_ms) / 1000.0) < now(), false) as overdue,
         case when p.job_name is not null then null
              when due.remembered and handled.since + interval '1 second' <= now() and (due.tick is null or due.tick >= now()) then due.tick
              else scheduler.schedule_next(s, now()) end as next_run
) ticks;
