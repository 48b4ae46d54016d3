-- Dry run: OAuth authorization codes expired before $1 or used.
select count(*)::bigint as n from oauth_auth_codes where expires_at < $1 or used_at is not null
