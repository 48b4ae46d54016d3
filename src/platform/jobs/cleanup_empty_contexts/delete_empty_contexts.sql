-- Deletes at most $3 contexts created in [$1, $2) that have no task_messages and no
-- mcp_tool_executions (the executions are an audit record: their context stays).
-- The checks are scalar subqueries rather than NOT EXISTS: they stay one index probe per
-- context, where NOT EXISTS may be planned as a hash anti join reading all of task_messages.
-- The candidates are locked first (SKIP LOCKED: a context being written to right now is left
-- alone), then re-checked by scheduler.unused_context_ids under a snapshot taken after those
-- locks, so a message committed while this statement ran keeps its context.
with candidates as materialized (
  select c.ctid as row_id, c.context_id
  from user_contexts c
  where c.created_at >= $1 and c.created_at < $2
    and (select m.context_id from task_messages m where m.context_id = c.context_id limit 1) is null
    and (select e.context_id from mcp_tool_executions e where e.context_id = c.context_id limit 1) is null
  order by c.created_at
  limit $3
  for update of c skip locked
),
still_unused as materialized (
  select scheduler.unused_context_ids(array(select context_id from candidates)) as context_id
)
-- By ctid (a TID scan of the locked rows): a join on context_id could be planned as a hash
-- join reading all of user_contexts.
delete from user_contexts
where ctid = any (array(select k.row_id from candidates k join still_unused u on u.context_id = k.context_id))
