-- Where the slice of contexts created in [$1, $2) that starts at $1 ends: after $3 contexts,
-- read from user_contexts_created_at_idx alone. When more than $3 contexts share the created_at
-- $1 the slice takes all of them (it must end after its start). `last`: the slice reaches $2.
with nth as (
  select created_at from user_contexts
  where created_at >= $1 and created_at < $2
  order by created_at
  offset $3 limit 1
),
slice as (
  select case
    when not exists (select 1 from nth) then $2::timestamptz
    when (select created_at from nth) > $1::timestamptz then (select created_at from nth)
    else coalesce((select min(created_at) from user_contexts where created_at > $1 and created_at < $2), $2::timestamptz)
  end as slice_end
)
select slice_end::text as slice_end, slice_end >= $2::timestamptz as last from slice
