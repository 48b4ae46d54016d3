-- Finishes a successful run and releases the task's lock ($6), waking runs that wait for it,
-- in one round trip.
with finished as (
  update scheduler.job_runs
  set status = 'success',
      finished_at = clock_timestamp(),
      duration_ms = greatest(0, round(extract(epoch from clock_timestamp() - started_at) * 1000))::int,
      items_processed = $2,
      items_failed = $3,
      message = $4,
      details = $5,
      error = null
  where id = $1 and status = 'running'
  returning id
)
select case when $6::text is null then null else scheduler.release_run_lock($6) end as unlocked, (select count(*) from finished)::int as finished
