-- scheduler.finish_run, saying also whether it completed the graphile-worker job (its row was
-- still locked by the worker pool that ran it, and is now deleted). A node that knows its
-- run's job is complete does not send graphile-worker's own completion, which would find
-- nothing (src/engine/graphile/internals.ts, finishedJobs): one round trip less per run.
create function scheduler.finish_run_reporting(p_lock_key text, p_job_id bigint, p_worker_pool text,
                                               out unlocked boolean, out completed boolean)
language plpgsql as $$
declare
  v_queue bigint;
begin
  completed := false;
  if p_lock_key is not null then
    unlocked := pg_advisory_unlock(hashtextextended(p_lock_key, 0));
  end if;
  if p_job_id is not null and p_worker_pool is not null then
    delete from graphile_worker._private_jobs j
    where j.id = p_job_id and j.locked_by = p_worker_pool
    returning j.job_queue_id into v_queue;
    completed := found;
    if v_queue is not null then
      update graphile_worker._private_job_queues q
      set locked_by = null, locked_at = null
      where q.id = v_queue and q.locked_by = p_worker_pool;
    end if;
  end if;
  if p_lock_key is not null and exists (select 1 from scheduler.lock_waiters where lock_key = p_lock_key) then
    perform scheduler.wake_lock_waiters(p_lock_key);
  end if;
end $$;

-- The old name stays for nodes of the previous version during a rolling upgrade.
create or replace function scheduler.finish_run(p_lock_key text, p_job_id bigint, p_worker_pool text)
returns boolean
language sql as $$
  select unlocked from scheduler.finish_run_reporting(p_lock_key, p_job_id, p_worker_pool);
$$;
