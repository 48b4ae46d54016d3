-- Deletes at most $2 OAuth refresh tokens that expired before $1. A token being refreshed
-- right now is locked and skipped; one whose expiry was extended since this statement
-- started is re-checked in its new version by the lock, and kept.
-- By ctid (a TID scan): a join on token_id could be planned as a hash join reading the table.
with doomed as (
  select ctid from oauth_refresh_tokens
  where expires_at < $1
  limit $2
  for update skip locked
)
delete from oauth_refresh_tokens
where ctid = any (array(select ctid from doomed))
