-- Late and missed ticks (issue 12). A schedule is late while a tick of it has waited longer
-- than its grace (`?grace=`, 60 s by default) plus its jitter with no run started for it or a
-- later tick. A tick is missed when no node ever queued it: graphile-worker's cron advances
-- _private_known_crontabs.last_execution to each tick it queues, in order, so the ticks a
-- jump of last_execution passes over are exactly the ones nobody queued (every node was down
-- and `fill=` did not reach back to them). The trigger below records each once, as a history
-- row with status 'missed': the row update that queues the next tick happens once, on
-- whichever node (or stock graphile-worker) wins it.

alter table scheduler.schedules
  add column grace_ms int not null default 60000 check (grace_ms >= 1000);

alter table scheduler.job_runs drop constraint job_runs_status_check;
alter table scheduler.job_runs add constraint job_runs_status_check
  check (status in ('running', 'success', 'failed', 'abandoned', 'skipped', 'missed'));

-- One row per missed tick, even if a trigger fired twice; also what missed counts read.
create unique index job_runs_missed_idx on scheduler.job_runs (job_name, scheduled_for) where status = 'missed';
-- The newest tick an entry has handled (a run started, or the tick skipped), one index step.
create index job_runs_ticks_idx on scheduler.job_runs (job_name, scheduled_for desc) include (status) where scheduled_for is not null;

-- Each schedule's last success in one index probe (for /metrics), even for a schedule whose
-- recent history holds no success at all, which a walk along job_runs_job_name_started_idx
-- would read to its end.
create index job_runs_last_success_idx on scheduler.job_runs (job_name, finished_at desc) where status = 'success';

-- Pruning keeps lifetime counts of skipped and missed ticks too (the missed counter must never go down).
alter table scheduler.job_stats
  add column pruned_skipped bigint not null default 0,
  add column pruned_missed bigint not null default 0;

-- When a job (entry or task) was last resumed: ticks that fell in the pause were not due.
create table scheduler.resumed_jobs (
  job_name text primary key,
  resumed_at timestamptz not null
);

create or replace function scheduler.resume_job(p_job_name text) returns boolean language sql as $$
  with resumed as (
    delete from scheduler.paused_jobs where job_name = p_job_name returning job_name
  ), noted as (
    insert into scheduler.resumed_jobs (job_name, resumed_at)
    select job_name, now() from resumed
    on conflict (job_name) do update set resumed_at = excluded.resumed_at
  )
  select true from resumed;
$$;

-- Ticks of entry `s` before this instant do not count (neither late nor missed): before the
-- entry last changed in the crontab, or before it (or its task) was last resumed.
create function scheduler.ticks_count_since(s scheduler.schedules)
returns timestamptz language sql stable as $$
  select greatest(s.updated_at,
    (select max(rj.resumed_at) from scheduler.resumed_jobs rj where rj.job_name in (s.job_name, s.task)));
$$;

-- The earliest tick of entry `s` that is due and has waited longer than grace + jitter at
-- `at`, with no run started for it or a later tick; null when there is none (not late).
-- Ticks before scheduler.ticks_count_since(s) do not count.
create function scheduler.overdue_tick(s scheduler.schedules, at timestamptz)
returns timestamptz language sql stable as $$
  select tick
  from (
    select greatest(
      (select r.scheduled_for from scheduler.job_runs r
       where r.job_name = s.job_name and r.scheduled_for is not null and r.status <> 'missed'
       order by r.scheduled_for desc limit 1),
      scheduler.ticks_count_since(s)
    ) as since
  ) handled
  cross join lateral (select scheduler.schedule_next(s, handled.since + interval '1 second') as tick) next
  where tick + make_interval(secs => (s.grace_ms + s.jitter_ms) / 1000.0) < at;
$$;

-- At most this many missed ticks are recorded per jump (a minutely entry down for a week);
-- the walk runs inside graphile-worker's cron statement.
create function scheduler.record_missed_ticks() returns trigger language plpgsql as $$
declare
  s scheduler.schedules;
  tick timestamptz;
  recorder text;
  recorded int := 0;
begin
  select * into s from scheduler.schedules where job_name = new.identifier;
  -- Not in the crontab as the nodes last loaded it, or paused: its ticks were not due.
  if not found or exists (select 1 from scheduler.paused_jobs pj where pj.job_name in (s.job_name, s.task)) then
    return null;
  end if;
  select n.node_id into recorder from scheduler.nodes n
  where n.application_name = current_setting('application_name', true) and n.stopped_at is null
  order by n.started_at desc limit 1;
  tick := scheduler.schedule_next(s, greatest(old.last_execution, scheduler.ticks_count_since(s)) + interval '1 second');
  while tick is not null and tick < new.last_execution and recorded < 10000 loop
    insert into scheduler.job_runs (job_id, job_name, task, attempt, node_id, scheduled_for, started_at, finished_at, status, error, message, details)
    values (null, s.job_name, s.task, 0, recorder, tick, tick, tick, 'missed',
            'no scheduler node queued this tick: none was running at ' || to_char(tick at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"')
              || ' and the entry''s fill= (backfill) did not reach back to it',
            'missed: no node ran this tick',
            jsonb_build_object('reason', 'missed', 'resumed_at', new.last_execution))
    on conflict (job_name, scheduled_for) where status = 'missed' do nothing;
    recorded := recorded + 1;
    tick := scheduler.schedule_next(s, tick + interval '1 second');
  end loop;
  return null;
end
$$;

-- Relies on graphile-worker internals (its cron's known_crontabs row): see src/engine/graphile/internals.ts.
create trigger scheduler_record_missed_ticks
after update of last_execution on graphile_worker._private_known_crontabs
for each row
when (old.last_execution is not null and new.last_execution > old.last_execution + interval '1 minute')
execute function scheduler.record_missed_ticks();

-- scheduled_jobs gains late, late_since, grace_ms and missed_count: its definition now lives
-- in repeatable/scheduled_jobs.sql, run after the numbered files.
