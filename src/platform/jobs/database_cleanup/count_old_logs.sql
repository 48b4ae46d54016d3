-- Dry run: logs older than the cutoff $1.
select count(*)::bigint as n from logs where "timestamp" < $1
