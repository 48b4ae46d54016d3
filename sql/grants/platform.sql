-- What the platform's jobs, ban policy and service reconciler need, granted to the runtime
-- role :"runtime_role" after the engine's grants (sql/grants/engine.sql). Row rights only.
-- UPDATE on a table the jobs only delete from is there because they lock their candidates
-- first (SELECT ... FOR UPDATE SKIP LOCKED needs it); no job updates those rows.
-- docs/security.md says why each right is here.

-- The platform's domain tables (unqualified, like the jobs' statements: the search_path
-- decides, as it does for the migrations).
-- database_cleanup probes users for the owners of logs; cleanup_inactive_sessions closes
-- idle sessions; malicious_ip_blacklist reads the last day of sessions.
grant select on users to :"runtime_role";
grant select, update on user_sessions to :"runtime_role";
-- cleanup_empty_contexts deletes contexts with neither messages nor MCP executions.
grant select, update, delete on user_contexts to :"runtime_role";
grant select on task_messages to :"runtime_role";
-- database_cleanup: old and orphaned logs, MCP executions of deleted contexts, spent OAuth codes
-- and tokens.
grant select, delete on logs to :"runtime_role";
grant select, delete on mcp_tool_executions to :"runtime_role";
grant select, update, delete on oauth_auth_codes to :"runtime_role";
grant select, update, delete on oauth_refresh_tokens to :"runtime_role";
-- behavioral_analysis lowers the reputation of abusive fingerprints.
grant select, update on fingerprint_reputation to :"runtime_role";
-- Bans: both security jobs and `ban`/`unban` write them (through scheduler.ban_ips), and
-- delete the expired ones.
grant select, insert, update, delete on banned_ips to :"runtime_role";
-- Services: each host's reconciler records what it observes, and nothing else. What a service
-- runs (command, args, cwd, env, port, host) and whether it should run (desired_status) are the
-- admin role's (sql/grants/platform_admin.sql): a node taken over through SQL cannot make a
-- host run another program. The revoke first takes back the table-wide rights an older version
-- granted (and the column rights with them); the columns are then granted again.
revoke insert, update, delete on services from :"runtime_role";
grant select on services to :"runtime_role";
grant update (status, status_changed_at, pid, process_start_ticks, boot_id, instance_id,
              started_at, stopped_at, restart_count, consecutive_failures, backoff_until,
              last_exit_code, last_exit_signal, last_error)
  on services to :"runtime_role";
-- The reconciler and `services cleanup` remove rows already disabled; an enabled one cannot be
-- removed without the right to change desired_status (trigger services_guard_removal, sql/platform/026).
grant delete on services to :"runtime_role";

-- The platform's state in the scheduler schema (its functions are covered by the engine's
-- grant on all functions of the schema).
-- Reference lists and policy, edited by operators with plain SQL (as the owner): read only.
grant select on scheduler.ip_allowlist, scheduler.datacenter_ranges, scheduler.high_risk_countries, scheduler.ban_policy to :"runtime_role";
-- Escalation memory of the ban policy (`unban --forget` deletes).
grant select, insert, update, delete on scheduler.ban_offences to :"runtime_role";
-- Where behavioral_analysis and the incremental cleanups stand.
grant select, insert, update on scheduler.analysis_watermarks to :"runtime_role";
grant select, insert, update, delete on scheduler.penalised_fingerprints to :"runtime_role";
grant select, insert, update on scheduler.cleanup_state to :"runtime_role";
-- Users deleted since the trigger was installed (written by the trigger, as the owner);
-- database_cleanup forgets them once their logs are gone.
grant select, delete on scheduler.removed_users to :"runtime_role";
