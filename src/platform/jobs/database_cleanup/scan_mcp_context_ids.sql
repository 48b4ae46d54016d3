-- One step of the MCP orphan scan: the next $2 distinct context_id of mcp_tool_executions
-- after $1 (null: from the first), by a loose index scan of mcp_tool_executions_context_id_idx,
-- and which of them no longer exist in user_contexts.
with recursive ids(context_id, n) as (
  (select e.context_id, 1 from mcp_tool_executions e
   where e.context_id is not null and ($1::text is null or e.context_id > $1)
   order by e.context_id limit 1)
  union all
  select (select min(e.context_id) from mcp_tool_executions e where e.context_id > ids.context_id), ids.n + 1
  from ids
  where ids.context_id is not null and ids.n < $2
)
select
  count(context_id)::int as scanned,
  max(context_id) as last_context_id,
  coalesce(array_agg(context_id) filter (
    where not exists (select 1 from user_contexts c where c.context_id = ids.context_id)
  ), '{}') as orphan_ids
from ids
where context_id is not null
