-- What people change and nodes may not: which services each host runs, and what they run.
-- Granted to the admin role :"admin_role" by `systemprompt-scheduler migrate --admin-role`, or
-- printed by `migrate --print-grants ROLE --admin-role ADMIN` for a DBA. `services add`,
-- `enable`, `disable`, `stop` and `cleanup` work as this role; `services list` too. It is never
-- the role nodes connect as (migrate refuses one role for both). Idempotent, re-applied by
-- every migrate for the admin roles it granted before. docs/security.md says why.

-- The services table (unqualified, like the platform's other tables: the search_path decides).
grant usage on schema public to :"admin_role";
-- Register, change and remove services (the whole row: `services stop` also records the stop).
grant select, insert, update, delete on services to :"admin_role";
-- Every change the admin role makes is recorded in the audit trail by the same statement
-- (scheduler.audit_record): the schema, and that one function of it.
grant usage on schema scheduler to :"admin_role";
grant execute on function scheduler.audit_record(text, text, text, jsonb) to :"admin_role";
