-- A live crontab edit a node rejected stays visible until the file is repaired: the node keeps
-- running the previous schedule, and `status`, `nodes`, the dashboard and /metrics say so.
alter table scheduler.nodes
  add column crontab_rejected_at timestamptz,
  add column crontab_error text;
