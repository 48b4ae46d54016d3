-- /api/schedules: every schedule as scheduled_jobs shows it; `*` so that columns the view gains
-- later (e.g. late and missed flags) reach the dashboard without a change here.
select * from public.scheduled_jobs order by job_name;
