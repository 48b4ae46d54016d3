-- Dry run: MCP tool executions of the contexts $1 that are absent from user_contexts.
with orphan_ids as materialized (
  select t.id from unnest($1::text[]) as t(id)
  where (select c.context_id from user_contexts c where c.context_id = t.id) is null
)
select count(*)::bigint as n
from mcp_tool_executions e
where e.context_id = any (array(select id from orphan_ids))
