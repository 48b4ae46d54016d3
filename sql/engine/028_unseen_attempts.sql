-- Every attempt is in the history. A run's row is written when it ends, or as 'running' once
-- it has gone on for a second; an attempt whose node died (or stopped) within that second had
-- no row, so rescue and shutdown, which abandon the rows of runs in progress, left no trace of
-- it: the job ran again and, on its last attempt, the tick vanished from history and metrics.
-- Now such an attempt gets an 'abandoned' row of its own, started when its job was locked.
-- (A job whose lock a live node lost before any worker ran it is different: that attempt
-- never started and is given back, scheduler.release_lost_jobs, so it has no row.)

-- For the still-locked jobs p_job_ids of node p_node_id: an 'abandoned' row for each whose
-- current attempt has none, returning the new rows' ids. A run waiting for its task's lock
-- (scheduler.lock_waiters) gave its attempt back and is not an attempt.
create function scheduler.abandon_unseen_attempts(p_job_ids bigint[], p_node_id text, p_error text)
returns setof bigint
language sql as $$
  insert into scheduler.job_runs
    (job_id, job_name, task, attempt, node_id, scheduled_for, dry_run, payload, started_at, status, finished_at, duration_ms, error)
  select j.id,
         coalesce(j.payload->>'_schedule', t.identifier),
         t.identifier,
         j.attempts,
         p_node_id,
         (j.payload->'_cron'->>'ts')::timestamptz,
         coalesce(j.payload->>'enforce' = 'false', false),
         j.payload::jsonb - '_cron' - '_schedule' - '_overlap' - '_jitter_max_ms' - '_jitter_ms',
         coalesce(j.locked_at, now()),
         'abandoned',
         clock_timestamp(),
         greatest(0, round(extract(epoch from clock_timestamp() - coalesce(j.locked_at, now())) * 1000))::int,
         p_error
  from graphile_worker._private_jobs j
  join graphile_worker._private_tasks t on t.id = j.task_id
  where j.id = any (p_job_ids)
    and j.locked_at is not null
    and j.attempts > 0
    and not exists (select 1 from scheduler.job_runs r where r.job_id = j.id and r.attempt = j.attempts)
    and not exists (select 1 from scheduler.lock_waiters w where w.job_id = j.id)
  order by j.id
  returning id;
$$;

create or replace function scheduler.rescue_dead_nodes(p_rescuer text, p_dead_after interval, p_lock_silence interval default interval '5 seconds')
returns setof scheduler.rescues
language plpgsql as $$
declare
  v_nodes text[];
  v_pools text[];
  v_rescued scheduler.rescues[];
  v_released int;
  v_rescue scheduler.rescues;
  v_with_unseen scheduler.rescues[] := '{}';
  v_reason text;
  v_origin timestamptz := scheduler.silence_origin();
  -- Within the heartbeat timeout of a promotion, a free liveness lock proves nothing.
  v_after_failover boolean := scheduler.primary_since() > now() - p_dead_after;
begin
  select array_agg(d.node_id), array_agg(d.worker_pool_id) filter (where d.worker_pool_id is not null)
  into v_nodes, v_pools
  from (
    select n.node_id, n.worker_pool_id
    from scheduler.nodes n
    where n.stopped_at is null and n.dead_at is null and n.node_id <> p_rescuer
      and (
        greatest(n.last_heartbeat_at, v_origin) < now() - p_dead_after
        or (n.holds_liveness_lock and not v_after_failover
            and greatest(n.last_heartbeat_at, pg_postmaster_start_time()) < now() - p_lock_silence
            and scheduler.node_process_gone(n.node_id, n.application_name))
      )
    order by n.node_id
    for update skip locked
  ) d;
  if v_nodes is null then
    return;
  end if;

  -- What each dead node holds, noted before it is released. Its sessions are ended first
  -- (fencing): one may still hold its run's advisory lock or keep running the run's SQL.
  select array_agg(row(
    nextval('scheduler.rescues_id_seq'), n.node_id, n.host, n.worker_pool_id, p_rescuer, now(), n.last_heartbeat_at,
    coalesce((select array_agg(j.id order by j.id) from graphile_worker.jobs j where j.locked_by = n.worker_pool_id), '{}'),
    coalesce((select array_agg(r.id order by r.id) from scheduler.job_runs r where r.node_id = n.node_id and r.status = 'running'), '{}'),
    case when n.application_name is null then 0 else scheduler.end_sessions(n.application_name) end
  )::scheduler.rescues order by n.node_id)
  into v_rescued
  from scheduler.nodes n
  where n.node_id = any (v_nodes);

  foreach v_rescue in array v_rescued loop
    v_reason := format(
      'node %s stopped heartbeating at %s and was declared dead by %s; this run was abandoned and its job released to run again',
      v_rescue.node_id, to_char(v_rescue.last_heartbeat_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), p_rescuer);
    perform scheduler.abandon_runs(v_rescue.runs_abandoned, v_reason);
    -- Attempts that died before their first row (a run's row is written when it ends, or
    -- after a second): their row now, while their jobs still say when they were locked.
    v_rescue.runs_abandoned := v_rescue.runs_abandoned || array(select scheduler.abandon_unseen_attempts(v_rescue.jobs_released, v_rescue.node_id, v_reason));
    v_with_unseen := v_with_unseen || v_rescue;
  end loop;
  v_rescued := v_with_unseen;

  if v_pools is not null then
    perform graphile_worker.force_unlock_workers(v_pools);
  end if;

  update scheduler.nodes set dead_at = now(), dead_by = p_rescuer where node_id = any (v_nodes);
  insert into scheduler.rescues select * from unnest(v_rescued);

  select coalesce(sum(cardinality(q.jobs_released)), 0) into v_released from unnest(v_rescued) q;
  if v_released > 0 then
    perform pg_notify('jobs:insert', json_build_object('count', v_released)::text);
  end if;

  return query select * from unnest(v_rescued);
end $$;

-- A node's own release at shutdown: jobs it still holds are released to run again; the runs
-- among them that had a row are abandoned (as before), the attempts that had none get one.
create or replace function scheduler.release_node(p_node_id text)
returns table (jobs_released bigint[], runs_abandoned bigint[])
language plpgsql as $$
declare
  v_pool text;
  v_jobs bigint[];
  v_runs bigint[];
  v_reason text := 'the node stopped while this run was in progress; its job was released to run again';
begin
  select worker_pool_id into v_pool from scheduler.nodes where node_id = p_node_id for update;
  select coalesce(array_agg(id order by id), '{}') into v_jobs from graphile_worker.jobs where locked_by = v_pool;
  select coalesce(array_agg(a.id order by a.id), '{}') into v_runs
  from scheduler.abandon_runs(
    array(select r.id from scheduler.job_runs r where r.node_id = p_node_id and r.status = 'running'),
    v_reason) as a(id);
  v_runs := v_runs || array(select scheduler.abandon_unseen_attempts(v_jobs, p_node_id, v_reason));
  if v_pool is not null then
    perform graphile_worker.force_unlock_workers(array[v_pool]);
  end if;
  update scheduler.nodes set stopped_at = now() where node_id = p_node_id;
  return query select v_jobs, v_runs;
end $$;
