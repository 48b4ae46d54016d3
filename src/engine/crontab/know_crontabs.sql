-- Entries ($1) not known yet are known from now on ($2, the database's time): their backfill
-- never reaches back before it (graphile-worker's cron does the same at start).
insert into graphile_worker._private_known_crontabs as known_crontabs (identifier, known_since)
select identifier, $2::timestamptz
from unnest($1::text[]) as unnest (identifier)
on conflict do nothing;
