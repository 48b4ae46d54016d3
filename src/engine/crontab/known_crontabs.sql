-- The entries graphile-worker's bookkeeping knows, and the last tick queued of each: where a
-- starting node's backfill (`?fill=`) starts from.
select identifier, known_since, last_execution from graphile_worker._private_known_crontabs;
