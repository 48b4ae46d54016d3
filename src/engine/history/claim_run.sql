-- Starts a run on the job's own connection in one round trip: takes the task's session
-- advisory lock ($1; null for jobs defined with exclusive: false), checks that neither the
-- job nor its task is paused ($2), and only when locked and not paused gives the run its id
-- and start time. Its history row is written by record_run.sql: when the run ends, or as
-- 'running' once it has run for a while (src/engine/history/runs.ts). A run that finds the lock
-- taken is listed as waiting for it (it is then put back in the queue:
-- scheduler.defer_locked_job); one that gets it is no longer waiting ($3: the job's id).
with lock as (
  select case when $1::text is null then true else pg_try_advisory_lock(hashtextextended($1, 0)) end as locked
),
paused as (
  select p.job_name from scheduler.paused_jobs p where p.job_name = any ($2::text[]) limit 1
),
waiting as (
  insert into scheduler.lock_waiters (lock_key, job_id)
  select $1, $3 from lock where not lock.locked and $3::bigint is not null
  on conflict do nothing
),
done_waiting as (
  delete from scheduler.lock_waiters w
  using lock
  where lock.locked and $1::text is not null and w.lock_key = $1 and w.job_id = $3::bigint
)
select lock.locked,
       (select job_name from paused) as paused_as,
       case when lock.locked and not exists (select 1 from paused) then nextval('scheduler.job_runs_id_seq') end as run_id,
       clock_timestamp()::text as started_at  -- as text: a JS Date would drop the microseconds
from lock
