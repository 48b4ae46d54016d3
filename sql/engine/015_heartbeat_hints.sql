-- An idle node should cost the database next to nothing. Until now every node ran a rescue
-- pass every few seconds whether or not any node had gone quiet. The heartbeat now says, in
-- the same statement, how many other nodes have missed a beat (silent for longer than
-- p_quiet_after, e.g. one heartbeat interval); a node runs a rescue pass only then, at once.
-- A node that has missed a beat is the only kind scheduler.rescue_dead_nodes can declare dead
-- (silent past its heartbeat timeout, or silent with its process gone), so no rescue is lost.
create function scheduler.node_beat(p_node_id text, p_quiet_after interval)
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
  )
  select beat.dead_at, beat.dead_by,
         (select count(*)::int from scheduler.nodes q
          where q.node_id <> p_node_id and q.stopped_at is null and q.dead_at is null
            and greatest(q.last_heartbeat_at, pg_postmaster_start_time()) < now() - p_quiet_after)
  from beat;
$$;
