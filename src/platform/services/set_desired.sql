-- Enables or disables a service ($1 name, $2 desired status) and records it in the audit
-- trail in the same statement: $3 who asks, $4 the action (services.enable, .disable or .stop),
-- $5 what else to record. `previous` is the row as it was (UPDATE ... FROM reads the old row).
with changed as (
  update services s set desired_status = $2
  from services was
  where s.name = $1 and was.name = s.name
  returning s.name, s.host, was.desired_status as previous
)
select changed.host,
       scheduler.audit_record($3, $4, changed.name, jsonb_build_object('host', changed.host, 'desired_status', $2::text, 'previous', changed.previous) || $5::jsonb) as audit_id
from changed
