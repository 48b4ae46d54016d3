-- What the schedules' counts and flags say, made exact (docs/schedules.md):
--
-- 1. Runs and attempts apart. A run is a tick or a manual run; each of its retries is one
--    more attempt, with a history row of its own. job_stats.runs counted rows (attempts):
--    one run that failed three attempts and then succeeded showed as 4 runs. It is renamed
--    `attempts`, and `runs` now counts first attempts.
-- 2. A dry run is not the entry's work. last_success_at moves only for a success that did the
--    entry's work: a run that changed things, or any run of an entry whose own payload is a
--    dry run (`{"enforce": false}` in the crontab). A manual dry run of the nightly cleanup
--    no longer reads as "the cleanup ran".
-- 3. Missed ticks are handled ticks. A tick recorded 'missed' clears lateness (job_stats.
--    last_tick includes it), and passed ticks are recorded missed when a node's cron starts
--    rather than at the entry's next tick (scheduler.record_passed_ticks), also for an entry
--    that never ran (from when it was published). Before, an entry whose tick passed while
--    every node was down showed LATE after the restart until its next tick, and an entry that
--    had never run got no 'missed' row at all.

-- 1. Runs and attempts. The runs of history already pruned are not known apart from their
-- attempts: the seed counts every pruned attempt as a run (exact for the rows still kept).
alter table scheduler.job_stats rename column runs to attempts;
alter table scheduler.job_stats add column runs bigint not null default 0;

-- 2. Whether a run of `p_job_name` did its entry's work although it was a dry run: the
-- entry's own payload asks for dry runs. Probed only for dry runs.
create function scheduler.dry_run_is_entry_work(p_job_name text) returns boolean
language sql stable as $$
  select coalesce((select s.payload->>'enforce' = 'false' from scheduler.schedules s where s.job_name = p_job_name), false);
$$;

-- A change of job_runs added to a job's totals (sql/engine/025 says how), with the runs now
-- counted apart from their attempts.
drop function scheduler.add_to_job_stats(text, bigint, bigint, bigint, bigint, bigint, timestamptz, timestamptz, bigint, timestamptz, bigint, timestamptz);
create function scheduler.add_to_job_stats(
  p_job_name text, p_runs bigint, p_attempts bigint, p_successes bigint, p_failures bigint, p_skipped bigint, p_missed bigint,
  p_last_success_at timestamptz, p_last_tick timestamptz,
  p_run_id bigint, p_run_started_at timestamptz, p_done_id bigint, p_done_started_at timestamptz)
returns void language plpgsql as $$
begin
  insert into scheduler.job_stats as st
    (job_name, runs, attempts, successes, failures, skipped, missed, last_success_at, last_tick,
     last_run_id, last_run_started_at, last_done_id, last_done_started_at, last_change)
  values (p_job_name, p_runs, p_attempts, p_successes, p_failures, p_skipped, p_missed, p_last_success_at, p_last_tick,
          p_run_id, p_run_started_at, p_done_id, p_done_started_at, 1)
  on conflict (job_name) do update set
    runs = st.runs + excluded.runs,
    attempts = st.attempts + excluded.attempts,
    successes = st.successes + excluded.successes,
    failures = st.failures + excluded.failures,
    skipped = st.skipped + excluded.skipped,
    missed = st.missed + excluded.missed,
    last_success_at = greatest(st.last_success_at, excluded.last_success_at),
    last_tick = greatest(st.last_tick, excluded.last_tick),
    last_run_id = case when st.last_run_id is null or (excluded.last_run_started_at, excluded.last_run_id) > (st.last_run_started_at, st.last_run_id)
                       then coalesce(excluded.last_run_id, st.last_run_id) else st.last_run_id end,
    last_run_started_at = case when st.last_run_id is null or (excluded.last_run_started_at, excluded.last_run_id) > (st.last_run_started_at, st.last_run_id)
                               then coalesce(excluded.last_run_started_at, st.last_run_started_at) else st.last_run_started_at end,
    last_done_id = case when st.last_done_id is null or (excluded.last_done_started_at, excluded.last_done_id) > (st.last_done_started_at, st.last_done_id)
                        then coalesce(excluded.last_done_id, st.last_done_id) else st.last_done_id end,
    last_done_started_at = case when st.last_done_id is null or (excluded.last_done_started_at, excluded.last_done_id) > (st.last_done_started_at, st.last_done_id)
                                then coalesce(excluded.last_done_started_at, st.last_done_started_at) else st.last_done_started_at end,
    last_change = st.last_change + 1;
end $$;

-- A new run row, counted row by row: a first attempt starts a run; a success that did the
-- entry's work moves its last success; any tick handled, missed ones included, moves the
-- entry's next due tick on (once per tick; a retry finds it done).
create or replace function scheduler.job_runs_inserted() returns trigger language plpgsql as $$
declare
  v_attempt boolean := new.status not in ('skipped', 'missed');
  v_done boolean := new.status not in ('running', 'skipped', 'missed');
  v_work boolean := new.status = 'success' and (not new.dry_run or scheduler.dry_run_is_entry_work(new.job_name));
begin
  perform scheduler.add_to_job_stats(new.job_name,
    (v_attempt and new.attempt <= 1)::int, v_attempt::int,
    (new.status = 'success')::int, (new.status in ('failed', 'abandoned'))::int,
    (new.status = 'skipped')::int, (new.status = 'missed')::int,
    case when v_work then new.finished_at end,
    new.scheduled_for,
    case when v_attempt then new.id end, case when v_attempt then new.started_at end,
    case when v_done then new.id end, case when v_done then new.started_at end);
  if new.scheduled_for is not null then
    perform scheduler.refresh_due_ticks(array[new.job_name]);
  end if;
  return null;
end $$;

-- Outcomes replacing 'running' rows and deleted rows, per statement (sql/engine/025 says why).
-- A row that was 'running' was counted as a run and an attempt when it was inserted.
create or replace function scheduler.job_runs_changed() returns trigger language plpgsql as $$
declare
  c record;
begin
  if tg_op = 'DELETE' then
    for c in select distinct o.job_name from old_rows o order by 1 loop
      perform scheduler.add_to_job_stats(c.job_name, 0, 0, 0, 0, 0, 0, null, null, null, null, null, null);
    end loop;
    return null;
  end if;
  for c in
    select n.job_name,
           count(*) filter (where n.status not in ('skipped', 'missed') and n.attempt <= 1) - count(*) filter (where o.status not in ('skipped', 'missed') and o.attempt <= 1) as runs,
           count(*) filter (where n.status not in ('skipped', 'missed')) - count(*) filter (where o.status not in ('skipped', 'missed')) as attempts,
           count(*) filter (where n.status = 'success') - count(*) filter (where o.status = 'success') as successes,
           count(*) filter (where n.status in ('failed', 'abandoned')) - count(*) filter (where o.status in ('failed', 'abandoned')) as failures,
           count(*) filter (where n.status = 'skipped') - count(*) filter (where o.status = 'skipped') as skipped,
           count(*) filter (where n.status = 'missed') - count(*) filter (where o.status = 'missed') as missed,
           max(n.finished_at) filter (where n.status = 'success' and (not n.dry_run or scheduler.dry_run_is_entry_work(n.job_name))) as last_success_at,
           (array_agg(n.id order by n.started_at desc, n.id desc) filter (where n.status not in ('running', 'skipped', 'missed')))[1] as done_id,
           max(n.started_at) filter (where n.status not in ('running', 'skipped', 'missed')) as done_started_at
    from new_rows n join old_rows o on o.id = n.id
    where o.status is distinct from n.status
    group by n.job_name
    order by n.job_name
  loop
    perform scheduler.add_to_job_stats(c.job_name, c.runs, c.attempts, c.successes, c.failures, c.skipped, c.missed,
                                       c.last_success_at, null, null, null, c.done_id, c.done_started_at);
  end loop;
  return null;
end $$;

-- The seed. Runs: every attempt counted so far, less the retries the history still holds.
-- Last success: where it points at a dry run that was not the entry's work, the newest
-- success the history holds that was. Last tick: missed ticks count as handled.
update scheduler.job_stats st
set runs = st.attempts - coalesce(h.retries, 0),
    last_success_at = case when st.last_success_at = h.dry_success_at then h.work_success_at else st.last_success_at end,
    last_tick = greatest(st.last_tick, h.missed_tick)
from (
  select r.job_name,
         count(*) filter (where r.status not in ('skipped', 'missed') and r.attempt > 1) as retries,
         max(r.finished_at) filter (where r.status = 'success' and r.dry_run and not scheduler.dry_run_is_entry_work(r.job_name)) as dry_success_at,
         max(r.finished_at) filter (where r.status = 'success' and (not r.dry_run or scheduler.dry_run_is_entry_work(r.job_name))) as work_success_at,
         max(r.scheduled_for) filter (where r.status = 'missed') as missed_tick
  from scheduler.job_runs r
  group by r.job_name
) h
where h.job_name = st.job_name;
update scheduler.job_stats set runs = attempts where runs = 0 and attempts > 0
  and not exists (select 1 from scheduler.job_runs r where r.job_name = job_stats.job_name);
select scheduler.refresh_due_ticks(null);

-- 3. Missed ticks. The ticks of entry `s` after `p_after` and before `p_before` (no node
-- queued them), recorded 'missed' by `p_recorder`, once each, at most 10,000 per call (a
-- minutely entry down for a week); returns the newest recorded, or null.
create function scheduler.record_missed_between(s scheduler.schedules, p_after timestamptz, p_before timestamptz, p_recorder text)
returns timestamptz language plpgsql as $$
declare
  tick timestamptz := scheduler.schedule_next(s, p_after + interval '1 second');
  newest timestamptz;
  recorded int := 0;
begin
  while tick is not null and tick < p_before and recorded < 10000 loop
    insert into scheduler.job_runs (job_id, job_name, task, attempt, node_id, scheduled_for, started_at, finished_at, status, error, message, details)
    values (null, s.job_name, s.task, 0, p_recorder, tick, tick, tick, 'missed',
            'no scheduler node queued this tick: none was running at ' || to_char(tick at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"')
              || ' and the entry''s fill= (backfill) did not reach back to it',
            'missed: no node ran this tick',
            jsonb_build_object('reason', 'missed', 'resumed_at', p_before))
    on conflict (job_name, scheduled_for) where status = 'missed' do nothing;
    newest := tick;
    recorded := recorded + 1;
    tick := scheduler.schedule_next(s, tick + interval '1 second');
  end loop;
  return newest;
end $$;

-- Where an entry's ticks start to count: ticks_count_since (its publication, its last resume)
-- or, for an entry graphile-worker's bookkeeping has seen queued, its last queued tick; for
-- one never queued, the moment the bookkeeping first knew it.
create function scheduler.first_countable_after(s scheduler.schedules, p_last_execution timestamptz, p_known_since timestamptz)
returns timestamptz language sql stable as $$
  select greatest(coalesce(p_last_execution, p_known_since - interval '1 second'), scheduler.ticks_count_since(s));
$$;

-- The node of the session (by its application_name), to name as who recorded a tick.
create function scheduler.session_node() returns text language sql stable as $$
  select n.node_id from scheduler.nodes n
  where n.application_name = current_setting('application_name', true) and n.stopped_at is null
  order by n.started_at desc limit 1;
$$;

-- The trigger on graphile-worker's bookkeeping (sql/engine/021), now also for an entry's first
-- queued tick (old.last_execution null: counted from when it became known) and leaving alone
-- the updates scheduler.record_passed_ticks makes (it has recorded those ticks itself).
create or replace function scheduler.record_missed_ticks() returns trigger language plpgsql as $$
declare
  s scheduler.schedules;
begin
  if current_setting('scheduler.recording_passed_ticks', true) = 'on' then
    return null;
  end if;
  select * into s from scheduler.schedules where job_name = new.identifier;
  -- Not in the crontab as the nodes last loaded it, or paused: its ticks were not due.
  if not found or exists (select 1 from scheduler.paused_jobs pj where pj.job_name in (s.job_name, s.task)) then
    return null;
  end if;
  perform scheduler.record_missed_between(s, scheduler.first_countable_after(s, old.last_execution, old.known_since), new.last_execution, scheduler.session_node());
  return null;
end
$$;

drop trigger scheduler_record_missed_ticks on graphile_worker._private_known_crontabs;
create trigger scheduler_record_missed_ticks
after update of last_execution on graphile_worker._private_known_crontabs
for each row
when (new.last_execution > coalesce(old.last_execution, old.known_since) + interval '1 minute')
execute function scheduler.record_missed_ticks();

-- A node's cron, starting: the ticks of the entries `p_job_names` before `p_before` that no
-- node queued (every node was down, or the database unreachable, and fill= did not reach
-- back) are recorded 'missed' now, and the entries' bookkeeping is advanced past them so that
-- no node queues them later. Paused entries are left alone. Each entry's bookkeeping row is
-- locked first: a node queueing one of those ticks at this moment either did (and it is not
-- recorded) or does not (it finds it handled). A row another node holds (it is queueing that
-- entry's tick right now) is skipped, never waited for, so this never deadlocks with the
-- cron's upserts; its entry's ticks are recorded by the next pass or by the trigger above.
-- Returns how many entries had ticks recorded.
create function scheduler.record_passed_ticks(p_job_names text[], p_before timestamptz, p_recorder text)
returns int language plpgsql as $$
declare
  e record;
  newest timestamptz;
  recorded int := 0;
begin
  for e in
    select s as entry, k.last_execution, k.known_since
    from scheduler.schedules s
    join graphile_worker._private_known_crontabs k on k.identifier = s.job_name
    where s.job_name = any (p_job_names)
      and not exists (select 1 from scheduler.paused_jobs pj where pj.job_name in (s.job_name, s.task))
    order by s.job_name
    for update of k skip locked
  loop
    newest := scheduler.record_missed_between(e.entry, scheduler.first_countable_after(e.entry, e.last_execution, e.known_since), p_before, p_recorder);
    if newest is not null then
      perform set_config('scheduler.recording_passed_ticks', 'on', true);
      update graphile_worker._private_known_crontabs set last_execution = newest
      where identifier = (e.entry).job_name and (last_execution is null or last_execution < newest);
      perform set_config('scheduler.recording_passed_ticks', 'off', true);
      recorded := recorded + 1;
    end if;
  end loop;
  return recorded;
end $$;

-- The earliest overdue tick of entry `s` at `at` (sql/engine/021), now counting missed ticks as
-- handled as job_stats.last_tick does (what scheduled_jobs shows is this, remembered).
create or replace function scheduler.overdue_tick(s scheduler.schedules, at timestamptz)
returns timestamptz language sql stable as $$
  select tick
  from (
    select greatest(
      (select r.scheduled_for from scheduler.job_runs r
       where r.job_name = s.job_name and r.scheduled_for is not null
       order by r.scheduled_for desc limit 1),
      scheduler.ticks_count_since(s)
    ) as since
  ) handled
  cross join lateral (select scheduler.schedule_next(s, handled.since + interval '1 second') as tick) next
  where tick + make_interval(secs => (s.grace_ms + s.jitter_ms) / 1000.0) < at;
$$;
