-- Review fixes: one way to abandon a run, runs that wait for a busy job without holding a
-- worker, nodes that say which tasks they can run, and a scheduled_jobs view that shows
-- task-level pauses with who paused, when and why.

-- Closes 'running' history rows as abandoned, with their duration and the reason. The one
-- place that does it: rescue of a dead node, a node's own release at shutdown, runs whose
-- outcome was lost with their connection, and a forced shutdown.
create function scheduler.abandon_runs(p_run_ids bigint[], p_error text)
returns setof bigint
language sql as $$
  update scheduler.job_runs r
  set status = 'abandoned',
      finished_at = clock_timestamp(),
      duration_ms = greatest(0, round(extract(epoch from clock_timestamp() - r.started_at) * 1000))::int,
      error = p_error
  where r.id = any (p_run_ids) and r.status = 'running'
  returning r.id;
$$;

-- scheduler.rescue_dead_nodes uses it from sql/009.

create or replace function scheduler.release_node(p_node_id text)
returns table (jobs_released bigint[], runs_abandoned bigint[])
language plpgsql as $$
declare
  v_pool text;
  v_jobs bigint[];
  v_runs bigint[];
begin
  select worker_pool_id into v_pool from scheduler.nodes where node_id = p_node_id for update;
  select coalesce(array_agg(id order by id), '{}') into v_jobs from graphile_worker.jobs where locked_by = v_pool;
  select coalesce(array_agg(a.id order by a.id), '{}') into v_runs
  from scheduler.abandon_runs(
    array(select r.id from scheduler.job_runs r where r.node_id = p_node_id and r.status = 'running'),
    'the node stopped while this run was in progress; its job was released to run again') as a(id);
  if v_pool is not null then
    perform graphile_worker.force_unlock_workers(array[v_pool]);
  end if;
  update scheduler.nodes set stopped_at = now() where node_id = p_node_id;
  return query select v_jobs, v_runs;
end $$;

create or replace function scheduler.close_lost_runs(p_node_id text, p_ended_runs bigint[])
returns setof bigint
language sql as $$
  select scheduler.abandon_runs(
    array(select r.id from scheduler.job_runs r where r.id = any (p_ended_runs) and r.node_id = p_node_id and r.status = 'running'),
    'this run ended but its outcome could not be recorded (database connection lost); a failed attempt is retried by graphile-worker');
$$;

-- Runs of an exclusive job that found another run holding the job's lock. They wait in the
-- queue (not in a worker): graphile-worker's job is put back with a later run_at and the
-- attempt it was charged given back; the run that holds the lock wakes them when it ends.
create table scheduler.lock_waiters (
  lock_key text not null,
  job_id bigint not null,
  since timestamptz not null default now(),
  primary key (lock_key, job_id)
);

-- Puts a locked graphile-worker job back to wait for lock p_lock_key: the attempt it was
-- charged is given back and it becomes due again after half the time it has waited so far
-- (1 to 15 s; graphile-worker's failure handling adds exp(attempts) seconds on top). The
-- run that releases the lock wakes it sooner. Relies on graphile-worker internals
-- (_private_jobs.attempts, run_at): see src/graphile/internals.ts.
create function scheduler.defer_locked_job(p_job_id bigint, p_lock_key text)
returns void
language sql as $$
  insert into scheduler.lock_waiters (lock_key, job_id) values (p_lock_key, p_job_id)
  on conflict do nothing;
  update graphile_worker._private_jobs j
  set attempts = greatest(j.attempts - 1, 0),
      run_at = now() + least(interval '15 seconds', greatest(interval '1 second', (now() - w.since) / 2))
  from scheduler.lock_waiters w
  where j.id = p_job_id and w.lock_key = p_lock_key and w.job_id = p_job_id;
$$;

-- Makes the jobs waiting for lock p_lock_key due now and wakes idle workers. Called by the run
-- that releases the lock; returns how many were woken.
create function scheduler.wake_lock_waiters(p_lock_key text)
returns int
language plpgsql as $$
declare
  v_woken int;
begin
  with woken as (
    update graphile_worker._private_jobs j set run_at = least(j.run_at, now())
    from scheduler.lock_waiters w
    where w.lock_key = p_lock_key and j.id = w.job_id and j.locked_at is null
    returning j.id
  ), forgotten as (
    -- A waiter still locked is between its deferral and graphile-worker's release of it:
    -- it stays listed for the next wake (or comes back at its run_at).
    delete from scheduler.lock_waiters w
    where w.lock_key = p_lock_key
      and (w.job_id in (select id from woken)
           or not exists (select 1 from graphile_worker._private_jobs j where j.id = w.job_id))
  )
  select count(*) into v_woken from woken;
  if v_woken > 0 then
    perform pg_notify('jobs:insert', json_build_object('count', v_woken)::text);
  end if;
  return v_woken;
end $$;

-- Releases a run's lock (taken by src/history/claim_run.sql) and wakes the runs waiting for it.
create function scheduler.release_run_lock(p_lock_key text)
returns boolean
language plpgsql as $$
declare
  v_unlocked boolean := pg_advisory_unlock(hashtextextended(p_lock_key, 0));
begin
  if exists (select 1 from scheduler.lock_waiters where lock_key = p_lock_key) then
    perform scheduler.wake_lock_waiters(p_lock_key);
  end if;
  return v_unlocked;
end $$;

-- The task identifiers a node can run (its task files and library jobs), kept current as task
-- files are added: `run` refuses a task that no live node knows.
alter table scheduler.nodes add column tasks text[];

-- Who paused a job: the CLI passes the person (OS user and host); SQL callers default to
-- their database role.
drop function scheduler.pause_job(text, text);
create function scheduler.pause_job(p_job_name text, p_reason text default null, p_paused_by text default null) returns boolean language sql as $$
  insert into scheduler.paused_jobs (job_name, paused_by, reason) values (p_job_name, coalesce(p_paused_by, current_user), p_reason)
  on conflict (job_name) do nothing
  returning true;
$$;

-- scheduled_jobs, now honest about pauses: an entry is disabled when it or its task is paused
-- (every run of it would be skipped), and says by whom, when and why.
drop view public.scheduled_jobs;
create view public.scheduled_jobs as
select
  s.job_name,
  s.task,
  s.schedule,
  p.job_name is null as enabled,
  last_run.started_at as last_run,
  case when p.job_name is null then scheduler.cron_next(s.minutes, s.hours, s.dates, s.months, s.dows, now()) end as next_run,
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
  p.reason as pause_reason
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
  where r.job_name = s.job_name
  order by r.started_at desc
  limit 1
) last_run on true
left join lateral (
  select r.error, r.duration_ms from scheduler.job_runs r
  where r.job_name = s.job_name and r.status <> 'running'
  order by r.started_at desc
  limit 1
) last_done on true
cross join lateral (
  select count(*) as runs,
         count(*) filter (where r.status = 'success') as successes,
         count(*) filter (where r.status in ('failed', 'abandoned')) as failures
  from scheduler.job_runs r
  where r.job_name = s.job_name
) counts;
