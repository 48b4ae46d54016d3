-- What reading the schedules costs (the dashboard's /api/schedules, /metrics, scheduled_jobs),
-- made independent of the size of the history and cheap per crontab entry:
--
-- - job_stats holds each job's lifetime totals, last run, last success and last handled tick,
--   kept by triggers on job_runs (every writer passes through them: the job
--   wrapper, rescues that mark runs abandoned, the missed-tick trigger). Before, each read
--   counted every history row of every schedule and added the counts of pruned runs; the
--   counts are still lifetime ones ("all time"): pruning deletes rows and changes no total.
-- - job_stats also remembers each entry's first tick after the last one handled (due_tick),
--   for the `since` it was computed from. scheduled_jobs uses it while `since` is unchanged
--   instead of walking the calendar twice per entry (next run, lateness) on every read.
-- - indexes for /api/runs filtered by status, with or without a job, and for the sparklines;
--   the two partial indexes that only the old per-read probes used are dropped.
-- - scheduler.recent_runs_cache: the dashboard's sparklines, recomputed for the jobs that ran.
-- - scheduler.cluster_gauges_cache: the cluster-wide gauges, computed by one node per
--   interval for the whole cluster (src/engine/http/cluster_gauges.sql).

-- No run may be recorded while the totals are seeded: it would be in neither the seed nor a
-- trigger that does not exist yet. Writers wait for this migration's commit (4-5 s with 1M
-- history rows, most of it building the indexes below).
lock table scheduler.job_runs in share row exclusive mode;

-- pruned_* (002, 021) are no longer written: nodes of the previous version may still fold
-- into them during a rolling upgrade; nothing reads them.
alter table scheduler.job_stats
  add column runs bigint not null default 0,
  add column successes bigint not null default 0,
  add column failures bigint not null default 0,
  add column skipped bigint not null default 0,
  add column missed bigint not null default 0,
  -- The newest run (by start) that is not a skipped or missed tick, and the newest finished one.
  add column last_run_id bigint,
  add column last_run_started_at timestamptz,
  add column last_done_id bigint,
  add column last_done_started_at timestamptz,
  add column last_success_at timestamptz,
  -- The newest tick a run started for or skipped (missed ticks are not handled).
  add column last_tick timestamptz,
  -- scheduler.schedule_next(entry, due_since + 1 s), where due_since is the `since` of
  -- scheduler.overdue_tick: valid while that `since` is unchanged.
  add column due_since timestamptz,
  add column due_tick timestamptz,
  -- Bumped by every change to the job's rows (scheduler.recent_runs_cache compares it).
  add column last_change bigint not null default 0;
-- One update per run of a job: room on the page for HOT updates.
alter table scheduler.job_stats set (fillfactor = 50);

-- Adds a change of job_runs to a job's totals: counts moved (an outcome replacing 'running'
-- moves a run from no outcome to its outcome; a new row adds one), the last success and
-- handled tick pushed forward, the last run and last finished run replaced by newer ones
-- (by start, then id). Every change bumps last_change, which tells the dashboard's cache of
-- recent runs (scheduler.recent_runs_cache) that it is stale. PL/pgSQL, not SQL: its plan is
-- kept for the session.
create function scheduler.add_to_job_stats(
  p_job_name text, p_runs bigint, p_successes bigint, p_failures bigint, p_skipped bigint, p_missed bigint,
  p_last_success_at timestamptz, p_last_tick timestamptz,
  p_run_id bigint, p_run_started_at timestamptz, p_done_id bigint, p_done_started_at timestamptz)
returns void language plpgsql as $$
begin
  insert into scheduler.job_stats as st
    (job_name, runs, successes, failures, skipped, missed, last_success_at, last_tick,
     last_run_id, last_run_started_at, last_done_id, last_done_started_at, last_change)
  values (p_job_name, p_runs, p_successes, p_failures, p_skipped, p_missed, p_last_success_at, p_last_tick,
          p_run_id, p_run_started_at, p_done_id, p_done_started_at, 1)
  on conflict (job_name) do update set
    runs = st.runs + excluded.runs,
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

-- The seed: what pruning folded in before, plus what the history holds.
update scheduler.job_stats
set runs = pruned_runs, successes = pruned_successes, failures = pruned_failures, skipped = pruned_skipped, missed = pruned_missed;

select scheduler.add_to_job_stats(job_name,
         count(*) filter (where status not in ('skipped', 'missed')),
         count(*) filter (where status = 'success'),
         count(*) filter (where status in ('failed', 'abandoned')),
         count(*) filter (where status = 'skipped'),
         count(*) filter (where status = 'missed'),
         max(finished_at) filter (where status = 'success'),
         max(scheduled_for) filter (where status <> 'missed'),
         (array_agg(id order by started_at desc, id desc) filter (where status not in ('skipped', 'missed')))[1],
         max(started_at) filter (where status not in ('skipped', 'missed')),
         (array_agg(id order by started_at desc, id desc) filter (where status not in ('running', 'skipped', 'missed')))[1],
         max(started_at) filter (where status not in ('running', 'skipped', 'missed')))
from scheduler.job_runs
group by job_name
order by job_name;

-- Remembers the first unhandled tick of the entries named (null: every entry) whose memo is
-- not for their current `since`: greatest(last handled tick, scheduler.ticks_count_since).
create function scheduler.refresh_due_ticks(p_job_names text[])
returns void language plpgsql as $$
begin
  if p_job_names is null then
    p_job_names := array(select job_name from scheduler.schedules);
  end if;
  insert into scheduler.job_stats as st (job_name, due_since, due_tick)
  select s.job_name, t.since, scheduler.schedule_next(s, t.since + interval '1 second')
  from scheduler.schedules s
  left join scheduler.job_stats cur on cur.job_name = s.job_name
  cross join lateral (select greatest(cur.last_tick, scheduler.ticks_count_since(s)) as since) t
  where s.job_name = any (p_job_names)
    and cur.due_since is distinct from t.since
  order by s.job_name
  on conflict (job_name) do update set due_since = excluded.due_since, due_tick = excluded.due_tick;
end $$;

-- A new run row (the hot path: each run's outcome is one insert), counted row by row.
create function scheduler.job_runs_inserted() returns trigger language plpgsql as $$
declare
  v_run boolean := new.status not in ('skipped', 'missed');
  v_done boolean := new.status not in ('running', 'skipped', 'missed');
begin
  perform scheduler.add_to_job_stats(new.job_name,
    v_run::int, (new.status = 'success')::int, (new.status in ('failed', 'abandoned'))::int,
    (new.status = 'skipped')::int, (new.status = 'missed')::int,
    case when new.status = 'success' then new.finished_at end,
    case when new.status <> 'missed' then new.scheduled_for end,
    case when v_run then new.id end, case when v_run then new.started_at end,
    case when v_done then new.id end, case when v_done then new.started_at end);
  -- A tick handled: the entry's next due tick moves on (once per tick; a retry finds it done).
  if new.scheduled_for is not null and new.status <> 'missed' then
    perform scheduler.refresh_due_ticks(array[new.job_name]);
  end if;
  return null;
end $$;

-- Outcomes replacing 'running' rows (several at once when a rescue abandons a node's runs) and
-- deleted rows (pruning: no total changes, the recent runs do): per statement, one call per job
-- in job_name order, so that two such statements lock job_stats rows in the same order.
create function scheduler.job_runs_changed() returns trigger language plpgsql as $$
declare
  c record;
begin
  if tg_op = 'DELETE' then
    for c in select distinct o.job_name from old_rows o order by 1 loop
      perform scheduler.add_to_job_stats(c.job_name, 0, 0, 0, 0, 0, null, null, null, null, null, null);
    end loop;
    return null;
  end if;
  for c in
    select n.job_name,
           count(*) filter (where n.status not in ('skipped', 'missed')) - count(*) filter (where o.status not in ('skipped', 'missed')) as runs,
           count(*) filter (where n.status = 'success') - count(*) filter (where o.status = 'success') as successes,
           count(*) filter (where n.status in ('failed', 'abandoned')) - count(*) filter (where o.status in ('failed', 'abandoned')) as failures,
           count(*) filter (where n.status = 'skipped') - count(*) filter (where o.status = 'skipped') as skipped,
           count(*) filter (where n.status = 'missed') - count(*) filter (where o.status = 'missed') as missed,
           max(n.finished_at) filter (where n.status = 'success') as last_success_at,
           (array_agg(n.id order by n.started_at desc, n.id desc) filter (where n.status not in ('running', 'skipped', 'missed')))[1] as done_id,
           max(n.started_at) filter (where n.status not in ('running', 'skipped', 'missed')) as done_started_at
    from new_rows n join old_rows o on o.id = n.id
    where o.status is distinct from n.status
    group by n.job_name
    order by n.job_name
  loop
    -- A row's start and tick never change: the last run and handled tick are the insert's.
    perform scheduler.add_to_job_stats(c.job_name, c.runs, c.successes, c.failures, c.skipped, c.missed,
                                       c.last_success_at, null, null, null, c.done_id, c.done_started_at);
  end loop;
  return null;
end $$;

create trigger job_runs_counted_insert after insert on scheduler.job_runs
for each row execute function scheduler.job_runs_inserted();
create trigger job_runs_counted_update after update on scheduler.job_runs
referencing old table as old_rows new table as new_rows
for each statement execute function scheduler.job_runs_changed();
create trigger job_runs_counted_delete after delete on scheduler.job_runs
referencing old table as old_rows
for each statement execute function scheduler.job_runs_changed();

-- Resuming moves `since` for the entry (or every entry of the task): their memo follows.
create function scheduler.resumed_job_noted() returns trigger language plpgsql as $$
begin
  perform scheduler.refresh_due_ticks(array(select s.job_name from scheduler.schedules s where new.job_name in (s.job_name, s.task)));
  return null;
end $$;
create trigger resumed_jobs_refresh_due_ticks after insert or update on scheduler.resumed_jobs
for each row execute function scheduler.resumed_job_noted();

select scheduler.refresh_due_ticks(null);

-- /api/runs?status=… with or without a job, newest first; and a superset of
-- job_runs_job_name_started_idx that the sparklines read without visiting the table.
create index job_runs_status_started_idx on scheduler.job_runs (status, started_at desc, id desc);
create index job_runs_job_status_started_idx on scheduler.job_runs (job_name, status, started_at desc, id desc);
create index job_runs_job_started_id_idx on scheduler.job_runs (job_name, started_at desc, id desc) include (status, duration_ms);
drop index scheduler.job_runs_job_name_started_idx;
-- The missed ticks a node's cron recorded since its last scrape (cluster_gauges.sql), one probe.
create index job_runs_missed_by_node_idx on scheduler.job_runs (node_id, id) where status = 'missed';
-- Last success and last handled tick now come from job_stats.
drop index scheduler.job_runs_last_success_idx;
drop index scheduler.job_runs_ticks_idx;

-- The dashboard's last 30 runs of each schedule, as computed at job_stats.last_change
-- (src/engine/http/recent_runs.sql): a request recomputes only the jobs that changed since.
-- Apart from job_stats so that a request writing it never holds a lock a run's end waits for.
create table scheduler.recent_runs_cache (
  job_name text primary key,
  job_change bigint not null,
  runs json not null
);

-- The cluster-wide gauges as last computed (one row). A scrape finding them older than its
-- interval recomputes them, unless another node is at it (an advisory lock tried, not waited
-- for); every other scrape reads this row.
create table scheduler.cluster_gauges_cache (
  id boolean primary key default true check (id),
  computed_at timestamptz not null,
  body json not null
);
insert into scheduler.cluster_gauges_cache (computed_at, body) values ('-infinity', '{}');
