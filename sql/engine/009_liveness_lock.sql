-- A crashed node is known dead at once. Each node holds a session-level advisory lock on its
-- heartbeat connection; when its process dies, PostgreSQL ends that session and the lock is
-- free. A rescuer declares such a node dead once it has missed one heartbeat, its lock can be
-- taken and no session of it is left, instead of waiting out the heartbeat timeout (which
-- stays, for nodes that hang while their connection lives).

alter table scheduler.nodes
  -- The node takes its liveness lock (nodes of older versions do not: for them only the
  -- heartbeat timeout applies).
  add column holds_liveness_lock boolean not null default false;

create function scheduler.node_lock_key(p_node_id text) returns bigint
language sql immutable parallel safe as $$
  select hashtextextended('systemprompt-scheduler:node:' || p_node_id, 0);
$$;

-- True when the node's process is gone: its liveness lock is free and none of its sessions is
-- waiting for it. (A dead process's idle sessions end at once, as the server reads the closed
-- connection; one still running a query lingers until the query ends, so only idle ones count.
-- A state this role may not see counts as waiting.) The lock is taken for a moment, then
-- released.
create function scheduler.node_process_gone(p_node_id text, p_application_name text) returns boolean
language plpgsql as $$
begin
  if p_application_name is not null
     and exists (select 1 from pg_stat_activity
                 where application_name = p_application_name and pid <> pg_backend_pid()
                   and state is distinct from 'active') then
    return false;
  end if;
  if pg_try_advisory_lock(scheduler.node_lock_key(p_node_id)) then
    perform pg_advisory_unlock(scheduler.node_lock_key(p_node_id));
    return true;
  end if;
  return false;
end $$;

drop function scheduler.rescue_dead_nodes(text, interval);
create function scheduler.rescue_dead_nodes(p_rescuer text, p_dead_after interval, p_lock_silence interval default interval '5 seconds')
returns setof scheduler.rescues
language plpgsql as $$
declare
  v_nodes text[];
  v_pools text[];
  v_rescued scheduler.rescues[];
  v_released int;
  v_rescue scheduler.rescues;
begin
  select array_agg(d.node_id), array_agg(d.worker_pool_id) filter (where d.worker_pool_id is not null)
  into v_nodes, v_pools
  from (
    select n.node_id, n.worker_pool_id
    from scheduler.nodes n
    where n.stopped_at is null and n.dead_at is null and n.node_id <> p_rescuer
      and (
        -- Silent past the heartbeat timeout (a restart of PostgreSQL silences every node at
        -- once, so silence counts from the later of the last beat and the server's start).
        greatest(n.last_heartbeat_at, pg_postmaster_start_time()) < now() - p_dead_after
        -- Or its process is gone: a beat missed, no session left, its liveness lock free.
        or (n.holds_liveness_lock
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
  -- (fencing): one may still hold its run's advisory lock or keep running the run's SQL, as
  -- PostgreSQL notices a vanished client only when it next talks to it.
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
    perform scheduler.abandon_runs(v_rescue.runs_abandoned, format(
      'node %s stopped heartbeating at %s and was declared dead by %s; this run was abandoned and its job released to run again',
      v_rescue.node_id, to_char(v_rescue.last_heartbeat_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), p_rescuer));
  end loop;

  if v_pools is not null then
    perform graphile_worker.force_unlock_workers(v_pools);
  end if;

  update scheduler.nodes set dead_at = now(), dead_by = p_rescuer where node_id = any (v_nodes);
  insert into scheduler.rescues select * from unnest(v_rescued);

  -- Wake idle workers on every node now rather than at their next poll.
  select coalesce(sum(cardinality(q.jobs_released)), 0) into v_released from unnest(v_rescued) q;
  if v_released > 0 then
    perform pg_notify('jobs:insert', json_build_object('count', v_released)::text);
  end if;

  return query select * from unnest(v_rescued);
end $$;
