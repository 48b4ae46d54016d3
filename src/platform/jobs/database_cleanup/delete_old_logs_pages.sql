-- At most $4 logs older than the cutoff $3 on the heap pages [$1, $2) of logs: a TID range scan
-- reads those pages once, in physical order, then the picked rows go by ctid (a TID scan, on
-- pages just read). The sweep of deleteOldLogs (logs.ts) when old logs are spread through the
-- table, where batches by "timestamp" would each read most of its pages again.
-- `(... < $3) is true` is "timestamp" < $3 (the column is not null) in a form no index can
-- serve: with statistics that see few old logs the planner would otherwise walk
-- logs_timestamp_idx and filter on ctid, reading every old log per batch. The condition is
-- re-checked on the deleted row, so a log renewed meanwhile is kept.
delete from logs
where ctid = any (array(
    select ctid from logs
    where ctid >= format('(%s,0)', $1::bigint)::tid and ctid < format('(%s,0)', $2::bigint)::tid
      and ("timestamp" < $3::timestamptz) is true
    limit $4))
  and ("timestamp" < $3::timestamptz) is true
