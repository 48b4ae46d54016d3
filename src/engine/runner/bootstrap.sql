-- Claims the bootstrap run of a job ($1) for this node ($2), unless another node claimed it
-- within the last minute: nodes that start together queue it once.
insert into scheduler.bootstrap_runs as b (job_name, queued_at, queued_by)
values ($1, now(), $2)
on conflict (job_name) do update set queued_at = now(), queued_by = $2
  where b.queued_at < now() - interval '1 minute'
returning job_name
