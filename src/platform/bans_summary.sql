-- The dashboard's active-bans summary: bans in force, how many permanent, made in the last
-- 24 hours, and by source (a ban is in force while permanent or not expired).
select count(*)::int as active,
       count(*) filter (where is_permanent)::int as permanent,
       count(*) filter (where banned_at > now() - interval '24 hours')::int as last_24h,
       coalesce((select json_object_agg(ban_source, n) from (
         select coalesce(ban_source, 'unknown') as ban_source, count(*)::int as n from banned_ips
         where is_permanent or expires_at is null or expires_at > now()
         group by 1) s), '{}'::json) as by_source
from banned_ips
where is_permanent or expires_at is null or expires_at > now()
