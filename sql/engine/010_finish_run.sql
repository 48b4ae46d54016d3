-- A successful run ends in one transaction: its history row (src/history/runs.ts), the release
-- of its task's lock, and the completion of its graphile-worker job. Until now the job was
-- completed by graphile-worker after the task returned, in a transaction of its own: the job's
-- queue stayed locked for that extra round trip, so the worker that had just run it found its
-- own queue still taken and, with every task in a queue of its own, often found nothing else
-- free and went to sleep for pollInterval. Completing the job here also means a run whose
-- success is recorded is never run again (a crash between the two used to re-run it).
--
-- The completion is graphile-worker's own (complete_job_q, 0.18): the job's row is deleted and
-- its queue unlocked, here only while the job is still locked by the worker pool that ran it
-- (p_worker_pool: a rescuer that released it meanwhile wins). graphile-worker's completion
-- then finds no row and does nothing. Relies on graphile-worker internals (_private_jobs,
-- _private_job_queues): see src/graphile/internals.ts.
create function scheduler.finish_run(p_lock_key text, p_job_id bigint, p_worker_pool text)
returns boolean
language plpgsql as $$
declare
  v_unlocked boolean;
begin
  if p_lock_key is not null then
    v_unlocked := pg_advisory_unlock(hashtextextended(p_lock_key, 0));
  end if;
  if p_job_id is not null and p_worker_pool is not null then
    with done as (
      delete from graphile_worker._private_jobs j
      where j.id = p_job_id and j.locked_by = p_worker_pool
      returning j.job_queue_id
    )
    update graphile_worker._private_job_queues q
    set locked_by = null, locked_at = null
    from done
    where q.id = done.job_queue_id and q.locked_by = p_worker_pool;
  end if;
  if p_lock_key is not null and exists (select 1 from scheduler.lock_waiters where lock_key = p_lock_key) then
    perform scheduler.wake_lock_waiters(p_lock_key);
  end if;
  return v_unlocked;
end $$;
