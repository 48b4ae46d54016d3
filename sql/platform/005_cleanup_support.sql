-- Support for the cleanup jobs cleanup_empty_contexts and database_cleanup (src/jobs/<job>/).
-- Their rules read "contexts with no messages" and "logs whose user no longer exists": done
-- naively, both are anti-joins over a whole table on every run. What is here lets each run cost
-- what it changes instead: where each incremental pass stands, and which users were removed.
-- The indexes the jobs read (created_at, user_id, context_id, expires_at, used_at) are in 001.

-- Where each incremental cleanup stands. One row per pass, written only by enforcing runs.
create table if not exists scheduler.cleanup_state (
  name text primary key,               -- 'cleanup_empty_contexts', 'database_cleanup.orphaned_logs'
  scanned_through timestamptz,         -- contexts: every context created before this has been checked
  last_full_scan_at timestamptz,       -- start of the last full scan that completed
  full_scan_requested_at timestamptz,  -- set by TRUNCATE users; cleared by the next full scan
  updated_at timestamptz not null default now()
);

-- Users deleted (or renamed) since the trigger below was installed: the only ids whose logs
-- can have become orphaned. database_cleanup deletes their logs through logs_user_id_idx and
-- forgets an id once the log retention has passed since its removal.
create table if not exists scheduler.removed_users (
  user_id text primary key,
  removed_at timestamptz not null default now()
);
create index if not exists removed_users_removed_at_idx on scheduler.removed_users (removed_at);

-- SECURITY DEFINER: the platform's own role deletes users, and it need not have any right on
-- the scheduler schema; a missing grant must never make deleting a user fail.
create or replace function scheduler.record_deleted_users() returns trigger
language plpgsql security definer set search_path = pg_catalog, scheduler as $$
begin
  insert into scheduler.removed_users as r (user_id, removed_at)
  select d.id::text, now() from deleted_users d where d.id is not null
  on conflict (user_id) do update set removed_at = excluded.removed_at;
  return null;
end $$;

create or replace function scheduler.record_renamed_user() returns trigger
language plpgsql security definer set search_path = pg_catalog, scheduler as $$
begin
  insert into scheduler.removed_users as r (user_id, removed_at) values (old.id::text, now())
  on conflict (user_id) do update set removed_at = excluded.removed_at;
  return null;
end $$;

-- TRUNCATE fires no row triggers and names no ids: ask for one full scan instead.
create or replace function scheduler.request_orphaned_logs_scan() returns trigger
language plpgsql security definer set search_path = pg_catalog, scheduler as $$
begin
  insert into scheduler.cleanup_state as s (name, full_scan_requested_at) values ('database_cleanup.orphaned_logs', now())
  on conflict (name) do update set full_scan_requested_at = now(), updated_at = now();
  return null;
end $$;

-- Statement-level for deletes, so a bulk delete of users costs one insert, not one per row.
drop trigger if exists scheduler_record_deleted_users on users;
create trigger scheduler_record_deleted_users after delete on users
  referencing old table as deleted_users
  for each statement execute function scheduler.record_deleted_users();

-- Row-level with WHEN, so the many updates of other columns do not call anything at all.
drop trigger if exists scheduler_record_renamed_user on users;
create trigger scheduler_record_renamed_user after update of id on users
  for each row when (old.id is distinct from new.id) execute function scheduler.record_renamed_user();

drop trigger if exists scheduler_request_orphaned_logs_scan on users;
create trigger scheduler_request_orphaned_logs_scan after truncate on users
  for each statement execute function scheduler.request_orphaned_logs_scan();

-- cleanup_empty_contexts locks its candidates, then calls this to re-check them. VOLATILE
-- plpgsql takes a fresh snapshot for its query, i.e. one taken after the row locks: a message
-- (or MCP execution) committed while the calling statement ran is seen, and keeps its context.
-- Table names are left to the caller's search_path, like every other statement of the jobs.
create or replace function scheduler.unused_context_ids(candidate_ids text[]) returns setof text
language plpgsql volatile as $$
begin
  return query
    select c.id from unnest(candidate_ids) as c(id)
    where (select m.context_id from task_messages m where m.context_id = c.id limit 1) is null
      and (select e.context_id from mcp_tool_executions e where e.context_id = c.id limit 1) is null;
end $$;
