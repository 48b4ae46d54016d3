-- Deletes at most $2 OAuth authorization codes that expired before $1 or were used.
-- A code being used right now is locked and skipped; one changed since this statement
-- started is re-checked in its new version by the lock, and a locked row cannot change again.
-- By ctid (a TID scan): a join on `code` could be planned as a hash join reading the table.
with doomed as (
  select ctid from oauth_auth_codes
  where expires_at < $1 or used_at is not null
  limit $2
  for update skip locked
)
delete from oauth_auth_codes
where ctid = any (array(select ctid from doomed))
