-- Deletes at most $4 logs of the users $1 that are still absent from users (one probe of
-- users_pkey per id, never a scan of users), with "timestamp"
-- in [$2, $3). Older logs went by age already; $3 is 'infinity' for users the trigger saw
-- removed, and a grace cutoff for ids found by a full scan (a log can be written, by another
-- connection, before the transaction creating its user commits).
-- The same conditions are repeated on the deleted row: a log changed meanwhile (given to
-- another user) is re-checked in its new version and kept. They are plain filters of the
-- TID scan: `= any ($1)` on a constant array is a hash lookup (PostgreSQL 14+), and a join
-- here could let the planner turn `ctid = any (...)` into a per-row walk along the array.
with orphan_ids as materialized (
  select t.id from unnest($1::text[]) as t(id)
  where (select u.id from users u where u.id = t.id) is null
)
delete from logs l
where l.ctid = any (array(
    select x.ctid from logs x
    where x.user_id = any (array(select id from orphan_ids))
      and x."timestamp" >= $2 and x."timestamp" < $3
    limit $4))
  and l.user_id = any ($1::text[])
  and l."timestamp" >= $2 and l."timestamp" < $3
