-- Replaces scheduler.schedules with the crontab a node has just loaded ($1: json array of
-- entries, $2: node id). Unchanged rows are left alone, so updated_at says when an entry
-- last changed.
with entries as (
  select * from json_to_recordset($1::json) as e(
    job_name text, task text, schedule text, description text, payload jsonb, options jsonb,
    minutes int[], hours int[], dates int[], months int[], dows int[], timezone text, overlap text, jitter_ms int, grace_ms int)
),
removed as (
  delete from scheduler.schedules s
  where not exists (select 1 from entries e where e.job_name = s.job_name)
  returning s.job_name
),
upserted as (
  insert into scheduler.schedules as s
    (job_name, task, schedule, description, payload, options, minutes, hours, dates, months, dows, timezone, overlap, jitter_ms, grace_ms, updated_at, updated_by)
  select job_name, task, schedule, description, payload, options, minutes, hours, dates, months, dows, timezone, overlap, jitter_ms, grace_ms, now(), $2
  from entries
  on conflict (job_name) do update set
    task = excluded.task, schedule = excluded.schedule, description = excluded.description,
    payload = excluded.payload, options = excluded.options, minutes = excluded.minutes,
    hours = excluded.hours, dates = excluded.dates, months = excluded.months, dows = excluded.dows,
    timezone = excluded.timezone, overlap = excluded.overlap, jitter_ms = excluded.jitter_ms, grace_ms = excluded.grace_ms,
    updated_at = now(), updated_by = $2
  where (s.task, s.schedule, s.description, s.payload, s.options, s.timezone, s.overlap, s.jitter_ms, s.grace_ms)
    is distinct from (excluded.task, excluded.schedule, excluded.description, excluded.payload, excluded.options, excluded.timezone, excluded.overlap, excluded.jitter_ms, excluded.grace_ms)
  returning s.job_name
)
select (select count(*) from removed)::int as removed, (select count(*) from upserted)::int as changed
