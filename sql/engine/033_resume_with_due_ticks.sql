-- resume_job as both the audit trail (sql/engine/030) and the remembered due ticks
-- (sql/engine/025) need it: the resume is recorded, and the resumed entries' next due tick is
-- computed again (while paused, none was due).
create or replace function scheduler.resume_job(p_job_name text, p_actor text default null)
returns boolean language plpgsql as $$
begin
  delete from scheduler.paused_jobs where job_name = p_job_name;
  if not found then
    return null;
  end if;
  insert into scheduler.resumed_jobs (job_name, resumed_at) values (p_job_name, now())
  on conflict (job_name) do update set resumed_at = excluded.resumed_at;
  perform scheduler.refresh_due_ticks(array(select s.job_name from scheduler.schedules s where p_job_name in (s.job_name, s.task)));
  perform scheduler.audit_record(coalesce(p_actor, current_user), 'resume', p_job_name);
  return true;
end $$;
