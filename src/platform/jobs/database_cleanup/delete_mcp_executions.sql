-- Deletes at most $2 MCP tool executions of the contexts $1 that are still absent from user_contexts.
with orphan_ids as materialized (
  select t.id from unnest($1::text[]) as t(id)
  where (select c.context_id from user_contexts c where c.context_id = t.id) is null
)
delete from mcp_tool_executions e
where e.ctid = any (array(
    select x.ctid from mcp_tool_executions x
    where x.context_id = any (array(select id from orphan_ids))
    limit $2))
  and e.context_id = any ($1::text[])
