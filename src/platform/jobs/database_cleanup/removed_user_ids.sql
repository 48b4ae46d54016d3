-- The next $2 ids recorded by the users triggers (sql/005), after $1 (null: from the first).
select user_id from scheduler.removed_users
where $1::text is null or user_id > $1
order by user_id
limit $2
