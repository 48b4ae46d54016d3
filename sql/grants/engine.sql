-- What a scheduler node (and the CLI on its behalf) may do in the engine's schemas, granted
-- to the runtime role :"runtime_role" by `systemprompt-scheduler migrate --runtime-role`, or
-- printed by `migrate --print-grants` for a DBA. Row rights only: no CREATE, no ownership,
-- no TRUNCATE. Every statement is idempotent; every migrate applies it again for the roles it
-- granted before (a DBA applying it by hand re-applies it after an upgrade). docs/security.md says why each right is here.

-- graphile-worker 0.18: workers claim, complete, fail and return jobs, register their task
-- identifiers, record cron executions, and check the schema version at start.
grant usage on schema graphile_worker to :"runtime_role";
grant select on graphile_worker.migrations to :"runtime_role";
grant select, insert, update, delete on graphile_worker._private_jobs to :"runtime_role";
grant select, insert, update on graphile_worker._private_job_queues to :"runtime_role";
grant select, insert on graphile_worker._private_tasks to :"runtime_role";
grant select, insert, update on graphile_worker._private_known_crontabs to :"runtime_role";
grant select on graphile_worker.jobs to :"runtime_role";
grant usage, select on all sequences in schema graphile_worker to :"runtime_role";
grant execute on all functions in schema graphile_worker to :"runtime_role";

-- graphile-worker enables row level security on its tables and defines no policy, so a role
-- that does not own them sees no row. One policy per runtime role, named after it, admits it
-- to every row (the grants above are the real limit). Dropped and created again, as CREATE
-- POLICY has no IF NOT EXISTS.
drop policy if exists :"runtime_role" on graphile_worker._private_jobs;
create policy :"runtime_role" on graphile_worker._private_jobs to :"runtime_role" using (true) with check (true);
drop policy if exists :"runtime_role" on graphile_worker._private_job_queues;
create policy :"runtime_role" on graphile_worker._private_job_queues to :"runtime_role" using (true) with check (true);
drop policy if exists :"runtime_role" on graphile_worker._private_tasks;
create policy :"runtime_role" on graphile_worker._private_tasks to :"runtime_role" using (true) with check (true);
drop policy if exists :"runtime_role" on graphile_worker._private_known_crontabs;
create policy :"runtime_role" on graphile_worker._private_known_crontabs to :"runtime_role" using (true) with check (true);

-- The scheduler's own state.
grant usage on schema scheduler to :"runtime_role";
-- A node reads which migrations are applied, to start without DDL when the schema is current.
grant select on scheduler.migrations to :"runtime_role";
grant select on scheduler.repeatable_migrations to :"runtime_role";
-- Run history: written by the job wrapper, pruned after the retention. Its triggers keep each
-- job's totals and last runs in job_stats, as the role that writes the run.
grant select, insert, update, delete on scheduler.job_runs to :"runtime_role";
grant usage, select on sequence scheduler.job_runs_id_seq to :"runtime_role";
grant select, insert, update on scheduler.job_stats to :"runtime_role";
-- Caches of the HTTP endpoint: the cluster-wide gauges, recomputed by whichever node scrapes
-- when they are stale, and the dashboard's recent runs per job.
grant select, update on scheduler.cluster_gauges_cache to :"runtime_role";
grant select, insert, update on scheduler.recent_runs_cache to :"runtime_role";
-- The crontab as each node loaded it (entries removed from it are deleted).
grant select, insert, update, delete on scheduler.schedules to :"runtime_role";
-- pause and resume.
grant select, insert, delete on scheduler.paused_jobs to :"runtime_role";
grant select, insert, update on scheduler.resumed_jobs to :"runtime_role";
-- Bootstrap jobs queued once per start of the cluster.
grant select, insert, update on scheduler.bootstrap_runs to :"runtime_role";
-- Cluster membership: register, heartbeat, stop, declare dead, prune.
grant select, insert, update, delete on scheduler.nodes to :"runtime_role";
grant select, insert, delete on scheduler.rescues to :"runtime_role";
grant usage, select on sequence scheduler.rescues_id_seq to :"runtime_role";
-- When this server became the primary (a failover: rescue waits for reconnecting nodes).
grant select, insert on scheduler.server_timelines to :"runtime_role";
-- Runs of an exclusive job waiting for its lock.
grant select, insert, delete on scheduler.lock_waiters to :"runtime_role";
-- The audit trail: read (`audit`, the dashboard), written and pruned only through
-- scheduler.audit_record and scheduler.audit_prune (granted with the schema's functions below),
-- so a node cannot change or remove what was recorded.
grant select on scheduler.audit to :"runtime_role";
grant execute on all functions in schema scheduler to :"runtime_role";

-- The scheduled_jobs view (in public, beside the platform's tables).
grant usage on schema public to :"runtime_role";
grant select on public.scheduled_jobs to :"runtime_role";
