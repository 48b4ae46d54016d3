-- Schedules beyond UTC (issue 13): a time zone per crontab entry, runs skipped because one
-- was already in progress (`?overlap=skip`), the delay `?jitter=` gave a run, and
-- scheduled_jobs showing all three with a next_run that is right across DST.

-- The zone an entry's five fields are read in (IANA name; `UTC` for graphile-worker's own
-- lines), and its overlap policy and jitter as written, for scheduled_jobs and `status`.
alter table scheduler.schedules
  add column timezone text not null default 'UTC',
  add column overlap text not null default 'queue_one' check (overlap in ('queue_one', 'skip', 'allow')),
  add column jitter_ms int not null default 0 check (jitter_ms >= 0);

-- 'skipped': a tick of an `?overlap=skip` entry that found a run in progress; it did not run
-- (message says why, details->>'reason' is 'overlap'). Not a run: scheduled_jobs counts it apart.
alter table scheduler.job_runs drop constraint job_runs_status_check;
alter table scheduler.job_runs add constraint job_runs_status_check
  check (status in ('running', 'success', 'failed', 'abandoned', 'skipped'));
-- How long after its tick this run was held back by the entry's `?jitter=` (null: no jitter).
alter table scheduler.job_runs add column jitter_ms int;

-- The first minute at or after `after` (rounded up to a whole minute) at which a crontab
-- entry whose fields are read on the wall clock of `zone` fires; null when it never does.
-- The DST rule is the one graphile-worker's cron is given for such entries
-- (src/engine/crontab/match.ts, which says why):
-- - follows_elapsed_time (the hour field is `*` or `*/N`): every instant whose wall clock
--   matches; a wall time that occurs twice fires twice, one that never occurs not at all;
-- - otherwise once per day's wall time: a time that occurs twice at its first occurrence
--   (`AT TIME ZONE` gives the later one, so the earlier is chosen explicitly), a time that
--   does not exist at the instant `AT TIME ZONE` gives (one gap-length later on the wall).
-- A zone PostgreSQL does not know gives null rather than breaking scheduled_jobs.
create function scheduler.cron_next_zoned(minutes int[], hours int[], dates int[], months int[], dows int[],
                                          zone text, follows_elapsed_time boolean, after timestamptz)
returns timestamptz language plpgsql immutable parallel safe as $$
declare
  from_ts timestamptz := to_timestamp(ceil(extract(epoch from after) / 60) * 60);
  d date;
  last_day date;
  date_restricts boolean := cardinality(dates) <> 31;
  dow_restricts boolean := cardinality(dows) <> 7;
  day_ok boolean;
  steady interval;
  found timestamptz;
  best timestamptz;
begin
  -- A day early: a skipped wall time of the day before may land after `after`.
  d := (from_ts at time zone zone)::date - 1;
  -- The rarest expression that can fire, 29 February, recurs within 8 years (2096 -> 2104).
  last_day := d + 366 * 9;
  while d <= last_day loop
    if date_restricts and dow_restricts then
      day_ok := extract(day from d)::int = any (dates) or extract(dow from d)::int = any (dows);
    elsif date_restricts then
      day_ok := extract(day from d)::int = any (dates);
    elsif dow_restricts then
      day_ok := extract(dow from d)::int = any (dows);
    else
      day_ok := true;
    end if;
    day_ok := day_ok and extract(month from d)::int = any (months);
    if not day_ok then
      exit when best is not null;
      d := d + 1;
      continue;
    end if;
    -- The offset two days either side: equal means no clock change near this day, and each
    -- wall time is one instant, the wall time minus that offset.
    steady := scheduler.zone_offset(zone, (d - 2)::timestamp at time zone 'UTC');
    if steady = scheduler.zone_offset(zone, (d + 2)::timestamp at time zone 'UTC') then
      select min((d + make_interval(hours => h, mins => m) - steady) at time zone 'UTC') into found
      from unnest(hours) h, unnest(minutes) m
      where (d + make_interval(hours => h, mins => m) - steady) at time zone 'UTC' >= from_ts;
    else
      select min(i.instant) into found
      from unnest(hours) h, unnest(minutes) m,
           lateral scheduler.zoned_instants(zone, d + make_interval(hours => h, mins => m), follows_elapsed_time) i(instant)
      where i.instant >= from_ts;
    end if;
    if found is not null and (best is null or found < best) then
      best := found;
    elsif best is not null then
      -- One more matching day looked at (a day's times may reach into the next): done.
      exit;
    end if;
    d := d + 1;
  end loop;
  return best;
exception when invalid_parameter_value then
  return null;
end $$;

-- The offset of `zone` from UTC at instant `at` (what its wall clock reads minus UTC).
create function scheduler.zone_offset(zone text, at timestamptz)
returns interval language sql immutable parallel safe as $$
  select (at at time zone zone) - (at at time zone 'UTC');
$$;

-- When a crontab entry in `zone` fires for the wall time `wall` (see cron_next_zoned):
-- every instant the wall clock reads it (follows_elapsed_time), or one: the first
-- occurrence, or for a time that does not exist `AT TIME ZONE`'s instant.
create function scheduler.zoned_instants(zone text, wall timestamp, follows_elapsed_time boolean)
returns setof timestamptz language sql immutable parallel safe as $$
  with pg as (
    select wall at time zone zone as later
  ), candidates as (
    -- AT TIME ZONE picks the later of two occurrences; the earlier is the wall time read
    -- with the offset of a day before.
    select pg.later,
           (wall - scheduler.zone_offset(zone, pg.later - interval '1 day')) at time zone 'UTC' as earlier
    from pg
  ), checked as (
    select later, (later at time zone zone) = wall as later_exists,
           earlier, earlier < later and (earlier at time zone zone) = wall as earlier_exists
    from candidates
  )
  select earlier from checked where earlier_exists
  union all
  select later from checked where later_exists and follows_elapsed_time
  union all
  select later from checked where not follows_elapsed_time and not earlier_exists;
$$;

-- When an entry fires next, in its own zone: graphile-worker's UTC rule for `UTC` entries,
-- the zoned one otherwise (an hour field of `*` or `*/N` follows elapsed time).
create function scheduler.schedule_next(s scheduler.schedules, after timestamptz)
returns timestamptz language sql immutable parallel safe as $$
  select case
    when s.timezone = 'UTC' then scheduler.cron_next(s.minutes, s.hours, s.dates, s.months, s.dows, after)
    else scheduler.cron_next_zoned(s.minutes, s.hours, s.dates, s.months, s.dows, s.timezone,
                                   split_part(s.schedule, ' ', 2) ~ '^\*(/[0-9]+)?$', after)
  end;
$$;

-- scheduled_jobs: every column as before and in the same order (CREATE OR REPLACE VIEW only
-- adds at the end), with next_run in the entry's zone; then the entry's time zone, overlap
-- policy and jitter, and how many ticks were skipped. Skipped ticks are not runs: they count
-- in skipped_count only, and last_run/last_status are the last real run.
create or replace view public.scheduled_jobs as
select
  s.job_name,
  s.task,
  s.schedule,
  p.job_name is null as enabled,
  last_run.started_at as last_run,
  case when p.job_name is null then scheduler.schedule_next(s, now()) end as next_run,
  last_run.status as last_status,
  last_done.error as last_error,
  coalesce(st.pruned_runs, 0) + counts.runs as run_count,
  s.description,
  last_done.duration_ms as last_duration_ms,
  coalesce(st.pruned_successes, 0) + counts.successes as success_count,
  coalesce(st.pruned_failures, 0) + counts.failures as failure_count,
  p.paused_at,
  s.payload,
  p.job_name as paused_as,
  p.paused_by,
  p.reason as pause_reason,
  s.timezone,
  s.overlap,
  s.jitter_ms,
  counts.skipped as skipped_count
from scheduler.schedules s
left join lateral (
  -- The entry's own pause wins over its task's.
  select pj.* from scheduler.paused_jobs pj
  where pj.job_name in (s.job_name, s.task)
  order by pj.job_name = s.job_name desc
  limit 1
) p on true
left join scheduler.job_stats st on st.job_name = s.job_name
left join lateral (
  select r.started_at, r.status from scheduler.job_runs r
  where r.job_name = s.job_name and r.status <> 'skipped'
  order by r.started_at desc
  limit 1
) last_run on true
left join lateral (
  select r.error, r.duration_ms from scheduler.job_runs r
  where r.job_name = s.job_name and r.status not in ('running', 'skipped')
  order by r.started_at desc
  limit 1
) last_done on true
cross join lateral (
  select count(*) filter (where r.status <> 'skipped') as runs,
         count(*) filter (where r.status = 'success') as successes,
         count(*) filter (where r.status in ('failed', 'abandoned')) as failures,
         count(*) filter (where r.status = 'skipped') as skipped
  from scheduler.job_runs r
  where r.job_name = s.job_name
) counts;
