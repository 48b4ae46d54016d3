-- Dry run: the logs delete_logs_of_users.sql would delete for the users $1, "timestamp" in [$2, $3).
with orphan_ids as materialized (
  select t.id from unnest($1::text[]) as t(id)
  where (select u.id from users u where u.id = t.id) is null
)
select count(*)::bigint as n
from logs l
where l.user_id = any (array(select id from orphan_ids))
  and l."timestamp" >= $2 and l."timestamp" < $3
