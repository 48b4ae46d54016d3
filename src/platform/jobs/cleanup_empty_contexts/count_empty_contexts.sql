-- Dry run: how many contexts created in [$1, $2) have no task_messages and no mcp_tool_executions
-- (one index probe each, as in delete_empty_contexts.sql).
select count(*)::bigint as n
from user_contexts c
where c.created_at >= $1 and c.created_at < $2
  and (select m.context_id from task_messages m where m.context_id = c.context_id limit 1) is null
  and (select e.context_id from mcp_tool_executions e where e.context_id = c.context_id limit 1) is null
