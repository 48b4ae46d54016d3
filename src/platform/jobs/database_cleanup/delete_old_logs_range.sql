-- One batch of logs by age: "timestamp" in ($1, $2] ($1 null: from the first), all older
-- than the cutoff $3. A plain range on logs_timestamp_idx: no per-row lookups, and it starts
-- after the previous batch, so the dead index entries that one left are not walked again.
delete from logs
where ($1::timestamptz is null or "timestamp" > $1) and "timestamp" <= $2 and "timestamp" < $3
