-- `services cleanup`: removes the named rows if they are still disabled and still without
-- a process we know of ($3: names whose process was verified gone on this host, or, for
-- another host, only rows that record no live process).
delete from services
where host = $1 and desired_status = 'disabled'
  and (name = any($2::text[]) or ($3::boolean and (pid is null or status in ('stopped', 'crashed', 'failed'))))
returning name
