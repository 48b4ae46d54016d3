-- The audit trail: who changed what by hand. One row per change an operator made (pause,
-- resume, run now, and the packs' own: bans, services, migrations), written by the same
-- statement or transaction as the change, so a change without its row cannot happen.
-- The runtime role reads it and appends to it only through scheduler.audit_record; it cannot
-- update or delete a row, nor prune one younger than a day (scheduler.audit_prune).
create table scheduler.audit (
  id bigint generated always as identity primary key,
  at timestamptz not null default now(),
  -- Who, as the asker named themselves: "OS user@host" for the CLI, "dashboard on NODE
  -- (ADDRESS)" for the dashboard, the application's name for the library.
  actor text not null,
  action text not null check (action ~ '^[a-z][a-z0-9_.-]{0,62}$'),
  -- What it was done to: a job, an IP address, a service, the database (migrate).
  target text,
  detail jsonb not null default '{}',
  -- What the database itself knows, whatever the asker said: the role logged in, where its
  -- connection came from (null over a Unix socket), and its application_name (a node's
  -- connections carry its id).
  db_role name not null,
  client_addr inet,
  application_name text
);

-- "The latest N", "the latest N for this target", and pruning by age.
create index audit_at on scheduler.audit (at desc, id desc);
create index audit_target_at on scheduler.audit (target, at desc, id desc);

-- The one way to write a row. Security definer, so that the runtime role needs no right on
-- the table beyond SELECT; session_user is the role that logged in (a definer function's
-- current_user is its owner). Bounded: a detail over 16 kB is replaced by its size.
create function scheduler.audit_record(p_actor text, p_action text, p_target text, p_detail jsonb default '{}')
returns bigint language sql volatile security definer set search_path = pg_catalog, pg_temp as $$
  insert into scheduler.audit (actor, action, target, detail, db_role, client_addr, application_name)
  values (
    left(coalesce(nullif(p_actor, ''), session_user), 200),
    p_action,
    left(p_target, 500),
    case when octet_length(coalesce(p_detail, '{}')::text) > 16384
      then jsonb_build_object('truncated', true, 'bytes', octet_length(p_detail::text))
      else coalesce(p_detail, '{}') end,
    session_user,
    inet_client_addr(),
    nullif(left(current_setting('application_name', true), 200), '')
  )
  returning id
$$;

-- Removes up to p_batch_size rows older than p_retention_days (at least one day: the shortest
-- SCHEDULER_HISTORY_RETENTION_DAYS), oldest first; returns how many. The nodes call it hourly.
create function scheduler.audit_prune(p_retention_days int, p_batch_size int default 5000)
returns int language sql volatile security definer set search_path = pg_catalog, pg_temp as $$
  with doomed as (
    select id from scheduler.audit
    where at < now() - make_interval(days => greatest(p_retention_days, 1))
    order by at, id
    limit least(greatest(p_batch_size, 1), 50000)
  ), gone as (
    delete from scheduler.audit a using doomed where a.id = doomed.id returning 1
  )
  select count(*)::int from gone
$$;

-- Only the roles granted them (sql/grants/) may write or prune: not every role of the cluster.
revoke execute on function scheduler.audit_record(text, text, text, jsonb) from public;
revoke execute on function scheduler.audit_prune(int, int) from public;

-- pause_job records the pause, under the same actor as paused_by. Same signature and result
-- (null when it was paused already: nothing changed, nothing recorded).
create or replace function scheduler.pause_job(p_job_name text, p_reason text default null, p_paused_by text default null)
returns boolean language plpgsql as $$
begin
  insert into scheduler.paused_jobs (job_name, paused_by, reason) values (p_job_name, coalesce(p_paused_by, current_user), p_reason)
  on conflict (job_name) do nothing;
  if not found then
    return null;
  end if;
  perform scheduler.audit_record(coalesce(p_paused_by, current_user), 'pause', p_job_name, jsonb_build_object('reason', p_reason));
  return true;
end $$;

-- resume_job takes who resumes (default: the database role) and records it. Dropped first:
-- a second resume_job beside the old one would make resume_job('x') ambiguous.
drop function scheduler.resume_job(text);
create function scheduler.resume_job(p_job_name text, p_actor text default null)
returns boolean language plpgsql as $$
begin
  delete from scheduler.paused_jobs where job_name = p_job_name;
  if not found then
    return null;
  end if;
  insert into scheduler.resumed_jobs (job_name, resumed_at) values (p_job_name, now())
  on conflict (job_name) do update set resumed_at = excluded.resumed_at;
  perform scheduler.audit_record(coalesce(p_actor, current_user), 'resume', p_job_name);
  return true;
end $$;
