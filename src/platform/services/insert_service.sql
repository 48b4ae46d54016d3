-- Registers a service, and records it in the audit trail in the same statement. $1 name,
-- $2 module, $3 host, $4 command, $5 args, $6 cwd, $7 env, $8 port, $9 desired status, $10 true
-- to replace an existing definition of the same name, $11 who asks. The environment's values
-- stay out of the trail (they may be secrets): only its names are recorded.
with saved as (
  insert into services (name, module_name, host, command, args, cwd, env, port, desired_status)
  values ($1, $2, $3, $4, $5::text[], $6, $7::jsonb, $8, $9)
  on conflict (name) do update
    set module_name = excluded.module_name, host = excluded.host, command = excluded.command,
        args = excluded.args, cwd = excluded.cwd, env = excluded.env, port = excluded.port,
        desired_status = excluded.desired_status
    where $10::boolean
  returning name, (xmax = 0) as inserted
)
select saved.name, saved.inserted,
       scheduler.audit_record($11, 'services.add', saved.name, jsonb_build_object(
         'host', $3::text, 'module', $2::text, 'command', $4::text, 'args', to_jsonb($5::text[]), 'cwd', $6::text,
         'env_keys', (select coalesce(jsonb_agg(k order by k), '[]') from jsonb_object_keys($7::jsonb) k),
         'port', $8::int, 'desired_status', $9::text, 'replaced', not saved.inserted)) as audit_id
from saved
