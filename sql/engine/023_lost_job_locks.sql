-- Jobs a live node locked but never ran. graphile-worker's get_job locks a job (locked_by =
-- the worker pool's id, locked_at, attempts + 1; for a job in a named queue, the queue row
-- too) and commits. If the reply never reaches the node (its connection broke after the
-- commit), or graphile-worker re-sends get_job after a network error (withRetries) and takes
-- another job, the first job stays locked by a node that is alive, so rescue_dead_nodes never
-- frees it: it (and its whole named queue) waits for graphile-worker's 4-hour stale-lock
-- sweep. The node calls this after one of its pool's connections failed (see
-- src/engine/cluster/lost-locks.ts).
--
-- Released: jobs locked by p_worker_pool that
--   - none of the node's workers holds (p_running: their active jobs, and the jobs its local
--     queue holds, if it has one),
--   - were locked more than p_older_than ago (a get_job still in flight, whose job a worker is
--     about to start, locked it just now),
--   - and whose run never began: a run writes its history row for the attempt (job_runs.attempt
--     is graphile-worker's attempts of the running job) once it runs for a while or ends, so a
--     job whose completion or failure is still being re-sent is left to that.
-- Each is unlocked and given its attempt back, as graphile-worker's own return of a job does
-- (sql/returnJobs.js): the attempt get_job charged was never used. Its queue row is unlocked
-- when this pool holds it. Rows locked by a transaction in flight (the node completing one)
-- are skipped. `suspects`: the jobs still locked by the pool that no worker holds, after the
-- release (young locks, finishing runs); the node checks again while there are any.
create function scheduler.release_lost_jobs(p_worker_pool text, p_running bigint[], p_older_than interval)
returns table (released bigint[], suspects int)
language plpgsql as $$
declare
  v_released bigint[];
begin
  with lost as (
    select j.id
    from graphile_worker._private_jobs j
    where j.locked_by = p_worker_pool
      and j.id <> all (coalesce(p_running, '{}'))
      and j.locked_at < now() - p_older_than
      and not exists (select 1 from scheduler.job_runs r where r.job_id = j.id and r.attempt = j.attempts)
    order by j.id
    for update of j skip locked
  ),
  unlocked as (
    update graphile_worker._private_jobs j
    set locked_by = null, locked_at = null, attempts = greatest(j.attempts - 1, 0)
    from lost
    where j.id = lost.id
    returning j.id, j.job_queue_id
  ),
  queues_freed as (
    update graphile_worker._private_job_queues q
    set locked_by = null, locked_at = null
    where q.id in (select job_queue_id from unlocked) and q.locked_by = p_worker_pool
  )
  select array_agg(id order by id) into v_released from unlocked;

  released := coalesce(v_released, '{}');
  -- Counted after the release (a new statement sees its updates).
  select count(*)::int into suspects
  from graphile_worker._private_jobs j
  where j.locked_by = p_worker_pool and j.id <> all (coalesce(p_running, '{}'));
  return next;
end $$;
