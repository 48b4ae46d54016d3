-- The next batch of logs older than the cutoff $2, after the timestamp $1 (null: from the
-- first), read from logs_timestamp_idx alone (index-only while the pages are all-visible):
-- one scan skipping $3 entries, one descent back.
-- last: fewer than $3 + 1 such logs are left; the batch is all of them (upto = $2).
-- upto: otherwise, the batch is every log with "timestamp" in ($1, upto]: at most $3 rows,
--   because upto is the last timestamp before that of the ($3 + 1)-th log.
-- upto is null when the first $3 + 1 logs share one timestamp (`tie`): they go by ctid.
with nth as (
  select "timestamp" as ts from logs
  where ($1::timestamptz is null or "timestamp" > $1) and "timestamp" < $2
  order by "timestamp"
  offset $3 limit 1
)
select
  nth.ts is null as last,
  (case
    when nth.ts is null then $2::timestamptz
    else (select max(l."timestamp") from logs l where ($1::timestamptz is null or l."timestamp" > $1) and l."timestamp" < nth.ts)
  end)::text as upto,
  nth.ts::text as tie
from (values (1)) as one
left join nth on true
