-- The run in progress at a cron tick ($3), of a task ($1) or of an entry ($2): started before
-- the tick and finished after it, or not finished. For `?overlap=skip` (src/engine/jobs).
select r.id
from scheduler.job_runs r
where (r.task = $1 or r.job_name = $2)
  and r.status not in ('skipped', 'missed')
  and r.started_at < $3::timestamptz
  and (r.finished_at is null or r.finished_at > $3::timestamptz)
order by r.started_at desc
limit 1
