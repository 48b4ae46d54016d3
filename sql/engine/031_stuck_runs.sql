-- Runs past their timeout whose function has not returned are recorded failed at their deadline
-- with details.stuck = true (until they return); `status` lists those of live nodes. A partial
-- index keeps that lookup off the rest of the history.
create index job_runs_stuck_idx on scheduler.job_runs (node_id) where details->>'stuck' = 'true';
