-- Removing a service that should run is a change of what runs, like disabling it: it needs the
-- right to change desired_status (the owner's, the admin role's). The runtime role may delete
-- rows (the reconciler forgets a disabled service whose process is gone, `services cleanup`
-- does the same) but holds no right on desired_status (sql/grants/platform.sql), so for it
-- only disabled rows go. Checked per row, as the role deleting (not SECURITY DEFINER).
create or replace function services_guard_removal() returns trigger language plpgsql as $$
begin
  if not has_column_privilege(tg_relid, 'desired_status', 'UPDATE') then
    raise exception 'permission denied to remove service %: it is enabled, and role % may not change which services run', old.name, current_user
      using errcode = 'insufficient_privilege',
            hint = 'disable it first as the scheduler''s admin role (granted by migrate --admin-role ROLE): systemprompt-scheduler services disable ' || old.name;
  end if;
  return old;
end;
$$;

drop trigger if exists services_guard_removal on services;
create trigger services_guard_removal
  before delete on services
  for each row when (old.desired_status is distinct from 'disabled')
  execute function services_guard_removal();
