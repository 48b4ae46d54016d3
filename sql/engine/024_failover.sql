-- Riding through a failover. Session advisory locks are not replicated: once a standby is
-- promoted no node holds its liveness lock, and every heartbeat is as old as the last one
-- replicated, while the nodes are alive and reconnecting. So silence is counted from the
-- later of a node's last beat, the server's start and the moment this server was first seen
-- as the primary (a promotion starts a new WAL timeline); for the heartbeat timeout after
-- that moment, no node is declared dead because its lock is free. A node whose process is
-- gone is still rescued: by the timeout, counted from the promotion.

create table scheduler.server_timelines (
  timeline int primary key,
  first_seen_at timestamptz not null default now()
);

-- The timeline this primary writes on: the first 8 hex digits of its current WAL file name.
create function scheduler.current_timeline() returns int
language sql volatile as $$
  select ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int;
$$;

-- When this server was first seen writing its current timeline (now, the first time).
create function scheduler.primary_since() returns timestamptz
language plpgsql volatile as $$
declare
  v_timeline int := scheduler.current_timeline();
  v_at timestamptz;
begin
  select first_seen_at into v_at from scheduler.server_timelines where timeline = v_timeline;
  if found then
    return v_at;
  end if;
  insert into scheduler.server_timelines (timeline) values (v_timeline) on conflict do nothing;
  select first_seen_at into v_at from scheduler.server_timelines where timeline = v_timeline;
  return v_at;
end $$;

-- The timeline of the server migrated is not a failover.
insert into scheduler.server_timelines (timeline, first_seen_at) values (scheduler.current_timeline(), '-infinity');

-- Since when silence counts at all: the later of the server's start and the moment it became
-- the primary. A node's silence counts from the later of this and its last beat.
create function scheduler.silence_origin() returns timestamptz
language sql volatile as $$
  select greatest(pg_postmaster_start_time(), scheduler.primary_since());
$$;

create or replace function scheduler.node_beat(p_node_id text, p_quiet_after interval)
returns table (was_dead_at timestamptz, was_dead_by text, quiet_nodes int)
language sql as $$
  with before as (
    select node_id, dead_at, dead_by from scheduler.nodes where node_id = p_node_id for update
  ), beat as (
    update scheduler.nodes n
    set last_heartbeat_at = now(), dead_at = null, dead_by = null
    from before
    where n.node_id = before.node_id
    returning before.dead_at, before.dead_by
  ), origin as (select scheduler.silence_origin() as at)
  select beat.dead_at, beat.dead_by,
         (select count(*)::int from scheduler.nodes q, origin
          where q.node_id <> p_node_id and q.stopped_at is null and q.dead_at is null
            and greatest(q.last_heartbeat_at, origin.at) < now() - p_quiet_after)
  from beat;
$$;

-- A node takes its liveness lock without waiting (pg_advisory_lock would queue behind a
-- session of its own that is still there: a half-open connection from before a network cut,
-- leaving one more waiting backend per retry). When its own older session holds the lock,
-- that session is ended and the node tries again. Returns 'taken', 'ended' (an own session
-- was ended: try again in a moment) or 'held' (another session holds it: a rescuer checking
-- it for a moment, or a session this role may not end).
create function scheduler.take_liveness_lock(p_node_id text, p_application_name text) returns text
language plpgsql as $$
declare
  v_key bigint := scheduler.node_lock_key(p_node_id);
  v_ended int := 0;
  v_pid int;
begin
  if pg_try_advisory_lock(v_key) then
    return 'taken';
  end if;
  for v_pid in
    select l.pid
    from pg_locks l
    join pg_stat_activity a on a.pid = l.pid
    where l.locktype = 'advisory' and l.granted and l.objsubid = 1
      and l.database = (select oid from pg_database where datname = current_database())
      and ((l.classid::bigint << 32) | l.objid::bigint) = v_key
      and l.pid <> pg_backend_pid()
      and a.application_name = p_application_name
  loop
    begin
      if pg_terminate_backend(v_pid) then
        v_ended := v_ended + 1;
      end if;
    exception when insufficient_privilege then
      null;
    end;
  end loop;
  return case when v_ended > 0 then 'ended' else 'held' end;
end $$;

create or replace function scheduler.rescue_dead_nodes(p_rescuer text, p_dead_after interval, p_lock_silence interval default interval '5 seconds')
returns setof scheduler.rescues
language plpgsql as $$
declare
  v_nodes text[];
  v_pools text[];
  v_rescued scheduler.rescues[];
  v_released int;
  v_rescue scheduler.rescues;
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
    perform scheduler.abandon_runs(v_rescue.runs_abandoned, format(
      'node %s stopped heartbeating at %s and was declared dead by %s; this run was abandoned and its job released to run again',
      v_rescue.node_id, to_char(v_rescue.last_heartbeat_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), p_rescuer));
  end loop;

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

-- Jobs a live node locked but never ran (sql/023), after a failover: a lock taken on the
-- previous primary, before this one took over, can have no get_job still on its way to a
-- worker (that server is gone or refuses writes), so it need not wait out p_older_than. Such
-- jobs ran again only after the heartbeat timeout; now as soon as their node has reconnected.
create or replace function scheduler.release_lost_jobs(p_worker_pool text, p_running bigint[], p_older_than interval)
returns table (released bigint[], suspects int)
language plpgsql as $$
declare
  v_released bigint[];
  v_primary_since timestamptz := scheduler.primary_since();
begin
  with lost as (
    select j.id
    from graphile_worker._private_jobs j
    where j.locked_by = p_worker_pool
      and j.id <> all (coalesce(p_running, '{}'))
      and (j.locked_at < now() - p_older_than or j.locked_at < v_primary_since)
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
  select count(*)::int into suspects
  from graphile_worker._private_jobs j
  where j.locked_by = p_worker_pool and j.id <> all (coalesce(p_running, '{}'));
  return next;
end $$;
