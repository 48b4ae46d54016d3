-- The runtime roles `migrate --runtime-role` granted (sql/grants/): every later migrate grants
-- them again, so the objects of an upgrade are covered without anyone remembering to re-run
-- the grants. Only the owner reads it; the runtime roles have no right here.
create table scheduler.runtime_roles (
  role_name name primary key,
  granted_at timestamptz not null default now(),
  granted_by name not null default current_user
);
