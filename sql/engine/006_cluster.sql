-- Cluster membership beside graphile-worker: every node heartbeats into scheduler.nodes;
-- a node silent past a threshold is declared dead by a live node, which releases the jobs
-- and queues its worker pool holds (graphile-worker alone would wait 4 hours), marks its
-- running history rows abandoned, ends its leftover database sessions, and records the rescue.

alter table scheduler.nodes
  -- What the node's connections call themselves, so a rescuer can end its orphaned sessions.
  add column application_name text,
  -- Set by the live node that declared this one dead (and released its jobs).
  add column dead_at timestamptz,
  add column dead_by text;

create index nodes_live_idx on scheduler.nodes (last_heartbeat_at) where stopped_at is null and dead_at is null;

-- One row per dead node rescued: what it held and what was done about it.
create table scheduler.rescues (
  id bigserial primary key,
  node_id text not null,
  host text not null,
  worker_pool_id text,
  rescued_by text not null,
  rescued_at timestamptz not null default now(),
  last_heartbeat_at timestamptz not null,
  jobs_released bigint[] not null default '{}',   -- graphile_worker job ids unlocked
  runs_abandoned bigint[] not null default '{}',  -- scheduler.job_runs ids marked abandoned
  sessions_ended int not null default 0           -- orphaned database sessions terminated
);
create index rescues_rescued_at_idx on scheduler.rescues (rescued_at);

-- A node's heartbeat. Returns one row when the node is registered: whether (and by whom) it
-- had been declared dead since its last beat; a node that comes back rejoins. No row: the
-- node is unknown (its row was pruned) and must register again.
create function scheduler.node_heartbeat(p_node_id text)
returns table (was_dead_at timestamptz, was_dead_by text)
language sql as $$
  with before as (
    select node_id, dead_at, dead_by from scheduler.nodes where node_id = p_node_id for update
  )
  update scheduler.nodes n
  set last_heartbeat_at = now(), dead_at = null, dead_by = null
  from before
  where n.node_id = before.node_id
  returning before.dead_at, before.dead_by;
$$;

-- Declares dead every node silent for longer than p_dead_after and rescues what it held, in
-- one transaction. Silence counts from the later of the last heartbeat and the server's own
-- start: a restart of PostgreSQL silences every node at once and must not condemn them all.
-- SKIP LOCKED lets several live nodes call this at once: each dead node is rescued once.
create function scheduler.rescue_dead_nodes(p_rescuer text, p_dead_after interval)
returns setof scheduler.rescues
language plpgsql as $$
declare
  v_nodes text[];
  v_pools text[];
  v_rescued scheduler.rescues[];
  v_released int;
begin
  select array_agg(d.node_id), array_agg(d.worker_pool_id) filter (where d.worker_pool_id is not null)
  into v_nodes, v_pools
  from (
    select n.node_id, n.worker_pool_id
    from scheduler.nodes n
    where n.stopped_at is null and n.dead_at is null and n.node_id <> p_rescuer
      and greatest(n.last_heartbeat_at, pg_postmaster_start_time()) < now() - p_dead_after
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

  update scheduler.job_runs r
  set status = 'abandoned',
      finished_at = now(),
      duration_ms = greatest(0, round(extract(epoch from now() - r.started_at) * 1000))::int,
      error = format('node %s stopped heartbeating at %s and was declared dead by %s; this run was abandoned and its job released to run again',
                     r.node_id, to_char(q.last_heartbeat_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS"Z"'), p_rescuer)
  from unnest(v_rescued) q
  where r.id = any (q.runs_abandoned) and r.status = 'running';

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

-- Terminates the sessions a node opened; a role may not be allowed to (then nothing happens,
-- and the sessions end when the server notices the client is gone).
create function scheduler.end_sessions(p_application_name text) returns int
language plpgsql as $$
declare
  v_ended int := 0;
  v_pid int;
begin
  for v_pid in
    select pid from pg_stat_activity where application_name = p_application_name and pid <> pg_backend_pid()
  loop
    begin
      if pg_terminate_backend(v_pid) then
        v_ended := v_ended + 1;
      end if;
    exception when insufficient_privilege then
      null;
    end;
  end loop;
  return v_ended;
end $$;

-- Clean shutdown: after the node's worker has stopped, releases anything its pool still holds
-- (graphile-worker can leave a job that finished during shutdown locked), abandons runs still
-- marked running, and marks the node stopped. Returns what was released.
create function scheduler.release_node(p_node_id text)
returns table (jobs_released bigint[], runs_abandoned bigint[])
language plpgsql as $$
declare
  v_pool text;
  v_jobs bigint[];
  v_runs bigint[];
begin
  select worker_pool_id into v_pool from scheduler.nodes where node_id = p_node_id for update;
  select coalesce(array_agg(id order by id), '{}') into v_jobs from graphile_worker.jobs where locked_by = v_pool;
  with abandoned as (
    update scheduler.job_runs r
    set status = 'abandoned',
        finished_at = now(),
        duration_ms = greatest(0, round(extract(epoch from now() - r.started_at) * 1000))::int,
        error = 'the node stopped while this run was in progress; its job was released to run again'
    where r.node_id = p_node_id and r.status = 'running'
    returning r.id
  )
  select coalesce(array_agg(id order by id), '{}') into v_runs from abandoned;
  if v_pool is not null then
    perform graphile_worker.force_unlock_workers(array[v_pool]);
  end if;
  update scheduler.nodes set stopped_at = now() where node_id = p_node_id;
  return query select v_jobs, v_runs;
end $$;

-- Deletes nodes that stopped or were rescued long ago, and old rescue records, in bounded batches.
create function scheduler.prune_nodes(p_older_than interval, p_limit int) returns int
language sql as $$
  with old_nodes as (
    select node_id from scheduler.nodes
    where coalesce(stopped_at, dead_at) < now() - p_older_than
    order by node_id limit p_limit
  ), gone_nodes as (
    delete from scheduler.nodes n using old_nodes o where n.node_id = o.node_id returning 1
  ), old_rescues as (
    select id from scheduler.rescues where rescued_at < now() - p_older_than order by id limit p_limit
  ), gone_rescues as (
    delete from scheduler.rescues r using old_rescues o where r.id = o.id returning 1
  )
  select ((select count(*) from gone_nodes) + (select count(*) from gone_rescues))::int;
$$;

-- History rows left 'running' although their run has ended: the job wrapper announced the end
-- (success or failure) but writing the outcome failed, e.g. its connection was cut. Closes them
-- as abandoned, so history and scheduled_jobs stop showing a run in progress.
create function scheduler.close_lost_runs(p_node_id text, p_ended_runs bigint[])
returns setof bigint
language sql as $$
  update scheduler.job_runs r
  set status = 'abandoned',
      finished_at = now(),
      duration_ms = greatest(0, round(extract(epoch from now() - r.started_at) * 1000))::int,
      error = 'this run ended but its outcome could not be recorded (database connection lost); a failed attempt is retried by graphile-worker'
  where r.id = any (p_ended_runs) and r.node_id = p_node_id and r.status = 'running'
  returning r.id;
$$;
