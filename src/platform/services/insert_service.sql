-- Registers a service. $1 name, $2 module, $3 host, $4 command, $5 args, $6 cwd, $7 env,
-- $8 port, $9 desired status, $10 true to replace an existing definition of the same name.
insert into services (name, module_name, host, command, args, cwd, env, port, desired_status)
values ($1, $2, $3, $4, $5::text[], $6, $7::jsonb, $8, $9)
on conflict (name) do update
  set module_name = excluded.module_name, host = excluded.host, command = excluded.command,
      args = excluded.args, cwd = excluded.cwd, env = excluded.env, port = excluded.port,
      desired_status = excluded.desired_status
  where $10::boolean
returning name, (xmax = 0) as inserted
