-- Clock skew. Each heartbeat is a measurement of the node's clock against the database's: the
-- node reads its clock before the beat and after the answer, and the beat returns the
-- database's clock_timestamp(), read in between (src/engine/cluster/clock.ts). The node keeps
-- the estimate (its cron ticks follow the database's clock) and records it with its next beat,
-- for `systemprompt-scheduler nodes`: the node's clock minus the database's, in ms, positive
-- when the node's clock is ahead; null until the node has measured it.

alter table scheduler.nodes add column clock_skew_ms int;

-- node_beat gains the skew to record and returns the database's clock. A new result column
-- needs a new definition; the parameter's default keeps the call of a node still running the
-- previous version (two arguments, three columns read by name) working during an upgrade.
drop function scheduler.node_beat(text, interval);

create function scheduler.node_beat(p_node_id text, p_quiet_after interval, p_clock_skew_ms int default null)
returns table (was_dead_at timestamptz, was_dead_by text, quiet_nodes int, database_clock_ms float8)
language sql as $$
  with before as (
    select node_id, dead_at, dead_by from scheduler.nodes where node_id = p_node_id for update
  ), beat as (
    update scheduler.nodes n
    set last_heartbeat_at = now(), dead_at = null, dead_by = null,
        clock_skew_ms = coalesce(p_clock_skew_ms, n.clock_skew_ms)
    from before
    where n.node_id = before.node_id
    returning before.dead_at, before.dead_by
  ), origin as (select scheduler.silence_origin() as at)
  select beat.dead_at, beat.dead_by,
         (select count(*)::int from scheduler.nodes q, origin
          where q.node_id <> p_node_id and q.stopped_at is null and q.dead_at is null
            and greatest(q.last_heartbeat_at, origin.at) < now() - p_quiet_after),
         (extract(epoch from clock_timestamp()) * 1000)::float8
  from beat;
$$;
