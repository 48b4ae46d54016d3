-- The ticks of entries $1 before $2 that no node queued, recorded 'missed' by node $3, and
-- the entries' bookkeeping advanced past them (sql/engine/034): how many entries had some.
select scheduler.record_passed_ticks($1::text[], $2::timestamptz, $3) as entries
