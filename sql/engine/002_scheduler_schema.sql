-- The scheduler's own state, beside graphile-worker's: run history, the crontab as last
-- loaded, paused jobs, nodes, and the public scheduled_jobs view layered over them.

create schema if not exists scheduler;

-- One row per execution attempt, written by the job wrapper (src/jobs/define.ts).
create table scheduler.job_runs (
  id bigserial primary key,
  job_id bigint,                 -- graphile_worker job id
  job_name text not null,        -- the crontab entry's identifier, or the task for ad-hoc runs
  task text not null,
  attempt int not null default 1,
  node_id text,
  scheduled_for timestamptz,     -- the cron tick this run belongs to, if any
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  duration_ms int,
  status text not null default 'running' check (status in ('running', 'success', 'failed', 'abandoned')),
  error text,
  items_processed bigint not null default 0,
  items_failed bigint not null default 0,
  message text,
  dry_run boolean not null default false,
  payload jsonb,
  details jsonb
);
create index job_runs_job_name_started_idx on scheduler.job_runs (job_name, started_at desc) include (status);
create index job_runs_started_idx on scheduler.job_runs (started_at);
create index job_runs_job_id_idx on scheduler.job_runs (job_id);
create index job_runs_running_idx on scheduler.job_runs (node_id) where status = 'running';

-- Counts of runs already pruned from job_runs, per job: pruning folds the rows it deletes
-- into these, so scheduled_jobs shows lifetime counts without a hot counter row that every
-- finishing run would have to lock.
create table scheduler.job_stats (
  job_name text primary key,
  pruned_runs bigint not null default 0,
  pruned_successes bigint not null default 0,
  pruned_failures bigint not null default 0
);

-- The crontab as each node last loaded it; the cron fields are graphile-worker's own
-- expansion of the expression, so next_run matches exactly what its cron fires.
create table scheduler.schedules (
  job_name text primary key,
  task text not null,
  schedule text not null,
  description text,
  payload jsonb,
  options jsonb not null default '{}',
  minutes int[] not null,
  hours int[] not null,
  dates int[] not null,
  months int[] not null,
  dows int[] not null,
  updated_at timestamptz not null default now(),
  updated_by text
);

create table scheduler.paused_jobs (
  job_name text primary key,
  paused_at timestamptz not null default now(),
  paused_by text,
  reason text
);

create function scheduler.pause_job(p_job_name text, p_reason text default null) returns boolean language sql as $$
  insert into scheduler.paused_jobs (job_name, paused_by, reason) values (p_job_name, current_user, p_reason)
  on conflict (job_name) do nothing
  returning true;
$$;

create function scheduler.resume_job(p_job_name text) returns boolean language sql as $$
  delete from scheduler.paused_jobs where job_name = p_job_name returning true;
$$;

-- Bootstrap jobs (run once when a node starts): the last time one was queued, so that
-- nodes starting together queue it once.
create table scheduler.bootstrap_runs (
  job_name text primary key,
  queued_at timestamptz not null,
  queued_by text
);

-- Scheduler processes (one per `start`). Heartbeats and rescue build on this table.
create table scheduler.nodes (
  node_id text primary key,
  host text not null,
  pid int not null,
  version text,
  worker_pool_id text,
  started_at timestamptz not null default now(),
  last_heartbeat_at timestamptz not null default now(),
  stopped_at timestamptz
);

-- The first minute at or after `after` (rounded up to a whole minute) that graphile-worker's
-- cron fires for these expanded fields, in UTC; null when the expression never fires
-- (e.g. 30 February). Day of month and day of week: when both restrict, either may match.
create function scheduler.cron_next(minutes int[], hours int[], dates int[], months int[], dows int[], after timestamptz)
returns timestamptz language plpgsql immutable parallel safe as $$
declare
  t timestamp := date_trunc('minute', after at time zone 'UTC');
  first_day date;
  d date;
  last_day date;
  date_restricts boolean := cardinality(dates) <> 31;
  dow_restricts boolean := cardinality(dows) <> 7;
  day_ok boolean;
  h int;
  m int;
  start_hour int;
  start_minute int;
begin
  if t < after at time zone 'UTC' then
    t := t + interval '1 minute';
  end if;
  first_day := t::date;
  start_hour := extract(hour from t)::int;
  start_minute := extract(minute from t)::int;
  d := first_day;
  -- The rarest expression that can fire, 29 February, recurs within 8 years (2096 -> 2104).
  last_day := first_day + 366 * 9;
  while d <= last_day loop
    if not (extract(month from d)::int = any (months)) then
      d := (date_trunc('month', d) + interval '1 month')::date;
      continue;
    end if;
    if date_restricts and dow_restricts then
      day_ok := extract(day from d)::int = any (dates) or extract(dow from d)::int = any (dows);
    elsif date_restricts then
      day_ok := extract(day from d)::int = any (dates);
    elsif dow_restricts then
      day_ok := extract(dow from d)::int = any (dows);
    else
      day_ok := true;
    end if;
    if day_ok then
      foreach h in array hours loop
        continue when d = first_day and h < start_hour;
        foreach m in array minutes loop
          continue when d = first_day and h = start_hour and m < start_minute;
          return (d + make_interval(hours => h, mins => m)) at time zone 'UTC';
        end loop;
      end loop;
    end if;
    d := d + 1;
  end loop;
  return null;
end $$;

create view public.scheduled_jobs as
select
  s.job_name,
  s.task,
  s.schedule,
  p.job_name is null as enabled,
  last_run.started_at as last_run,
  case when p.job_name is null then scheduler.cron_next(s.minutes, s.hours, s.dates, s.months, s.dows, now()) end as next_run,
  last_run.status as last_status,
  last_done.error as last_error,
  coalesce(st.pruned_runs, 0) + counts.runs as run_count,
  s.description,
  last_done.duration_ms as last_duration_ms,
  coalesce(st.pruned_successes, 0) + counts.successes as success_count,
  coalesce(st.pruned_failures, 0) + counts.failures as failure_count,
  p.paused_at,
  s.payload
from scheduler.schedules s
left join scheduler.paused_jobs p on p.job_name = s.job_name
left join scheduler.job_stats st on st.job_name = s.job_name
left join lateral (
  select r.started_at, r.status from scheduler.job_runs r
  where r.job_name = s.job_name
  order by r.started_at desc
  limit 1
) last_run on true
left join lateral (
  select r.error, r.duration_ms from scheduler.job_runs r
  where r.job_name = s.job_name and r.status <> 'running'
  order by r.started_at desc
  limit 1
) last_done on true
cross join lateral (
  select count(*) as runs,
         count(*) filter (where r.status = 'success') as successes,
         count(*) filter (where r.status in ('failed', 'abandoned')) as failures
  from scheduler.job_runs r
  where r.job_name = s.job_name
) counts;
