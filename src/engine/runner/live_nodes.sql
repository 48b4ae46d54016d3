-- Live nodes, and how many of them can run task $1 (nodes that predate task lists have tasks
-- null: they may know it). $2: SCHEDULER_NODE_DEAD_AFTER_MS.
select count(*)::int as live, count(*) filter (where $1 = any (tasks))::int as knowing,
       count(*) filter (where tasks is null)::int as silent
from scheduler.nodes
where stopped_at is null and dead_at is null and last_heartbeat_at > now() - make_interval(secs => $2::float8 / 1000)
