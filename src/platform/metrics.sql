-- The platform's cluster-wide gauges for /metrics (src/platform/metrics.ts), in one round trip.
-- A ban is active while it is permanent or has not expired (expired rows wait for the cleanup job).
select
  (select coalesce(json_agg(json_build_object('host', host, 'status', status, 'count', n)), '[]'::json)
   from (select host, status, count(*)::int as n from services group by host, status) s) as services,
  (select count(*)::int from banned_ips where is_permanent or expires_at is null or expires_at > now()) as bans_active;
