-- Writes a run's history row: 'running' while a long run is in progress, or its outcome.
-- An upsert on the run's id ($1, from claim_run.sql; null for a run that never started, which
-- gets a new id), so the two writes may arrive in either order: an outcome replaces a
-- 'running' row, and a 'running' row never replaces an outcome. A row a rescuer has marked
-- 'abandoned' is left so.
insert into scheduler.job_runs as r
  (id, job_id, job_name, task, attempt, node_id, scheduled_for, dry_run, payload, started_at,
   status, finished_at, duration_ms, error, items_processed, items_failed, message, details, jitter_ms)
select coalesce($1::bigint, nextval('scheduler.job_runs_id_seq')), $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10::timestamptz, clock_timestamp()),
       $11,
       case when $11 <> 'running' then clock_timestamp() end,
       case when $11 <> 'running' then greatest(0, round(extract(epoch from clock_timestamp() - coalesce($10::timestamptz, clock_timestamp())) * 1000))::int end,
       $12, coalesce($13::bigint, 0), coalesce($14::bigint, 0), $15, $16, $17
on conflict (id) do update set
  status = excluded.status,
  finished_at = excluded.finished_at,
  duration_ms = excluded.duration_ms,
  error = excluded.error,
  items_processed = excluded.items_processed,
  items_failed = excluded.items_failed,
  message = excluded.message,
  details = excluded.details
where r.status = 'running' and excluded.status <> 'running'
returning r.id
