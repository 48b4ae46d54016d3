-- More than a batch of logs share the timestamp $1 (a bulk insert in one transaction): take
-- them $3 at a time, by ctid. The re-check on the row is the cutoff $2 rather than "= $1",
-- which the planner could prefer as an index scan filtering every row against the ctid array.
delete from logs
where ctid = any (array(select ctid from logs where "timestamp" = $1 limit $3))
  and "timestamp" < $2
