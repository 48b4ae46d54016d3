-- Queues one tick ($2) of crontab entries ($1: [{identifier, job}], the job as graphile-worker's
-- cron builds it) as graphile-worker 0.18's cron does (its scheduleCronJobs): each entry's
-- _private_known_crontabs row is advanced to the tick by an upsert that only one node wins, and
-- the winner adds the job (its job key keeps one waiting job per entry). One guard more: the
-- tick is queued only once it has come on the database's clock, so an estimate of that clock
-- that is off a little never queues a tick early (the node tries again in due_in_ms).
with tick as (
  select $2::timestamptz as at, $2::timestamptz <= now() as due
),
specs as (
  select
    index,
    (json->>'identifier')::text as identifier,
    ((json->'job')->>'task')::text as task,
    ((json->'job')->'payload')::json as payload,
    ((json->'job')->>'queueName')::text as queue_name,
    ((json->'job')->>'runAt')::timestamptz as run_at,
    ((json->'job')->>'maxAttempts')::smallint as max_attempts,
    ((json->'job')->>'priority')::smallint as priority,
    ((json->'job')->>'jobKey')::text as job_key,
    ((json->'job')->>'jobKeyMode')::text as job_key_mode
  from json_array_elements($1::json) with ordinality as entries (json, index), tick
  where tick.due
),
locks as (
  insert into graphile_worker._private_known_crontabs as known_crontabs (identifier, known_since, last_execution)
  select specs.identifier, tick.at, tick.at
  from specs, tick
  on conflict (identifier)
  do update set last_execution = excluded.last_execution
  where (known_crontabs.last_execution is null or known_crontabs.last_execution < excluded.last_execution)
  returning known_crontabs.identifier
),
queued as materialized (
  select graphile_worker.add_job(
    specs.task,
    specs.payload,
    specs.queue_name,
    coalesce(specs.run_at, now()),
    specs.max_attempts,
    specs.job_key,
    specs.priority,
    null, -- flags
    specs.job_key_mode
  ) as job
  from specs
  inner join locks on (locks.identifier = specs.identifier)
  order by specs.index asc
)
select tick.due,
       (select count(queued.job)::int from queued) as queued,
       greatest(0, extract(epoch from tick.at - now()) * 1000)::float8 as due_in_ms
from tick;
