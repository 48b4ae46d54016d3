-- Services the platform runs on a host (agents, MCP servers, APIs), each with a port, and what
-- the host's reconciler last observed about its process (src/orchestration/).
--
-- Desired state (written by people and the platform): name, module_name, host, command, args,
-- cwd, env, port, desired_status. Observed state (written only by the reconciler of `host`):
-- the rest. `if not exists` + `add column if not exists` let the scheduler adopt an existing
-- platform `services` table and add only what it lacks.

create table if not exists services (
  name text primary key,
  module_name text not null default 'agent' check (module_name in ('agent', 'mcp', 'api')),
  host text not null,
  command text not null,
  args text[] not null default '{}',
  cwd text,
  env jsonb not null default '{}' check (jsonb_typeof(env) = 'object'),
  port int not null check (port between 1 and 65535),
  desired_status text not null default 'enabled' check (desired_status in ('enabled', 'disabled')),
  status text not null default 'stopped'
    check (status in ('running', 'starting', 'stopped', 'crashed', 'orphaned', 'failed')),
  pid int,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- two services of one host on one port can never both run
  unique (host, port)
);

alter table services
  add column if not exists command text,
  add column if not exists args text[] not null default '{}',
  add column if not exists cwd text,
  add column if not exists env jsonb not null default '{}',
  -- identity of the process we started: pid alone is not proof, the kernel reuses pids
  add column if not exists process_start_ticks bigint,   -- /proc/<pid>/stat field 22
  add column if not exists boot_id text,                 -- start ticks count from this boot
  add column if not exists instance_id uuid,             -- SYSTEMPROMPT_SERVICE_INSTANCE in its environment
  add column if not exists restart_count int not null default 0,
  add column if not exists consecutive_failures int not null default 0,
  add column if not exists last_exit_code int,
  add column if not exists last_exit_signal text,
  add column if not exists last_error text,
  add column if not exists backoff_until timestamptz,
  add column if not exists started_at timestamptz,       -- when the current/last process was spawned
  add column if not exists stopped_at timestamptz,
  add column if not exists status_changed_at timestamptz not null default now(),
  add column if not exists created_at timestamptz not null default now(),
  add column if not exists updated_at timestamptz not null default now();

create index if not exists services_host_idx on services (host);

-- A change to what should run (desired status, command, arguments, directory, environment, port)
-- clears the crash history: a `failed` service is retried only after a person changed something.
-- It also wakes the host's reconciler (payload = host), so edits take effect at once.
create or replace function services_spec_changed() returns trigger language plpgsql as $$
begin
  if tg_op = 'UPDATE' then
    new.updated_at := now();
    -- only the old host's reconciler can stop the process; moving a live service would strand it
    if new.host is distinct from old.host and old.pid is not null then
      raise exception 'service % still has a process (pid %) on host %', old.name, old.pid, old.host
        using hint = 'stop it first (systemprompt-scheduler services stop NAME on that host), then change its host';
    end if;
    if (new.desired_status, new.command, new.args, new.cwd, new.env, new.port, new.host)
       is distinct from (old.desired_status, old.command, old.args, old.cwd, old.env, old.port, old.host) then
      new.consecutive_failures := 0;
      new.backoff_until := null;
      if old.status = 'failed' then
        new.status := 'stopped';
        new.status_changed_at := now();
      end if;
      perform pg_notify('scheduler_services', new.host);
      if new.host is distinct from old.host then
        perform pg_notify('scheduler_services', old.host);
      end if;
    end if;
  else
    perform pg_notify('scheduler_services', new.host);
  end if;
  return new;
end;
$$;

drop trigger if exists services_spec_changed on services;
create trigger services_spec_changed
  before insert or update on services
  for each row execute function services_spec_changed();
