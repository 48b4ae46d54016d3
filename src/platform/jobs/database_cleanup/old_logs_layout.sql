-- Where the logs older than the cutoff $1 lie in the heap, from a sample of about $2 pages
-- (TABLESAMPLE SYSTEM takes whole pages, each with the same probability; the whole table when
-- it has no more than $2 pages), to choose how deleteOldLogs (logs.ts) batches their delete:
--   table_pages   pages of logs: what a sweep in page ranges reads, each page once.
--   keyset_pages  estimated page reads of batches of $3 logs by "timestamp": per sampled page,
--                 the number of batches its old logs fall into, scaled to the whole table. The
--                 batches are taken as equal slices of the sampled old logs' time span.
--                 Logs written in time order: about the pages holding old logs. Old logs spread
--                 through the table (back-dated writes, a rewrite in another order, free space
--                 reused): up to a read of every such page per batch.
--   old_logs      estimated number of logs older than the cutoff.
with size as (
  select greatest(1, pg_relation_size('logs') / current_setting('block_size')::int) as pages
),
fraction as (
  select least(1.0, $2::float8 / pages) as f, pages from size
),
sample as (
  select (l.ctid::text::point)[0]::bigint as page, l."timestamp" as ts
  from logs l tablesample system (least(100, 100.0 * $2::float8 / greatest(1, pg_relation_size('logs') / current_setting('block_size')::int))) repeatable (0)
  where l."timestamp" < $1
),
span as (
  select min(ts) as lo, max(ts) as hi, count(*) as n from sample
),
batches as (
  select greatest(1, ceil(span.n / fraction.f / $3::int))::bigint as k, span.lo, span.hi
  from span cross join fraction
),
visits as (
  select count(*) as n
  from (
    select distinct s.page,
      least(b.k - 1, floor(b.k * extract(epoch from s.ts - b.lo) / nullif(extract(epoch from b.hi - b.lo), 0))) as batch
    from sample s cross join batches b
  ) v
)
select
  fraction.pages::bigint as table_pages,
  round((select n from span) / fraction.f)::bigint as old_logs,
  round((select n from visits) / fraction.f)::bigint as keyset_pages
from fraction
