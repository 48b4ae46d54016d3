-- The audit trail, newest first: $1 a target (null: every row), $2 how many.
select id, at, actor, db_role, action, target, detail, host(client_addr) as client_addr, application_name
from scheduler.audit
where $1::text is null or target = $1
order by at desc, id desc
limit $2
