-- Forgets, $2 at a time, removed users that are back in users, and those removed before the
-- log cutoff $1: every log they had before removal is now deleted by age. (Logs written for
-- them later, by a stale session, are left to the periodic full scan.)
delete from scheduler.removed_users r
where r.user_id in (
  select x.user_id from scheduler.removed_users x
  where x.removed_at < $1 or (select u.id from users u where u.id = x.user_id) is not null
  limit $2
)
