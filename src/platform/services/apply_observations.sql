-- Writes what one pass observed, for every changed row at once. A row edited since the pass
-- read it (its xmin moved) is left alone: the next pass sees the edit and decides again.
update services s
set status = x.status,
    consecutive_failures = x.consecutive_failures,
    backoff_until = x.backoff_until,
    last_error = x.last_error,
    status_changed_at = case when s.status is distinct from x.status then now() else s.status_changed_at end
from jsonb_to_recordset($2::jsonb) as x(name text, status text, consecutive_failures int, backoff_until timestamptz, last_error text, version text)
where s.host = $1 and s.name = x.name and s.xmin::text = x.version
