-- Dry run: OAuth refresh tokens expired before $1.
select count(*)::bigint as n from oauth_refresh_tokens where expires_at < $1
