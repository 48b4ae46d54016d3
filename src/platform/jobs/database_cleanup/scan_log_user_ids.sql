-- One step of the full orphan scan: the next $2 distinct user_id of logs after $1 (null: from
-- the first), found by a loose index scan of logs_user_id_idx (one index descent per distinct
-- id, so the scan costs the number of users that wrote logs, not the number of logs), and
-- which of them are in neither users nor removed_users (those are handled on every run).
with recursive ids(user_id, n) as (
  (select l.user_id, 1 from logs l
   where l.user_id is not null and ($1::text is null or l.user_id > $1)
   order by l.user_id limit 1)
  union all
  select (select min(l.user_id) from logs l where l.user_id > ids.user_id), ids.n + 1
  from ids
  where ids.user_id is not null and ids.n < $2
)
select
  count(user_id)::int as scanned,
  max(user_id) as last_user_id,
  coalesce(array_agg(user_id) filter (
    where not exists (select 1 from users u where u.id = ids.user_id)
      and not exists (select 1 from scheduler.removed_users r where r.user_id = ids.user_id)
  ), '{}') as orphan_ids
from ids
where user_id is not null
