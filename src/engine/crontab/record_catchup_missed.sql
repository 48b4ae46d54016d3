-- The ticks a `?catchup=latest` entry's backfill passed over ($3: tick times) for the newest one:
-- recorded 'missed' with why, once (the partial unique index on missed ticks), before the newest
-- is queued (whose bookkeeping would otherwise record them as out of fill='s reach).
insert into scheduler.job_runs (job_id, job_name, task, attempt, node_id, scheduled_for, started_at, finished_at, status, error, message, details)
select null, $1, $2, 0, $4, tick, tick, tick, 'missed',
       'after downtime only the newest missed tick ran (?catchup=latest); this older one was passed over',
       'missed: passed over by ?catchup=latest',
       jsonb_build_object('reason', 'catchup', 'ran', $5::timestamptz)
from unnest($3::timestamptz[]) as ticks (tick)
on conflict (job_name, scheduled_for) where status = 'missed' do nothing
