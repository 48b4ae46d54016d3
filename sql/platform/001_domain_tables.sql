-- The platform tables the jobs read and clean (SPEC §4). IF NOT EXISTS throughout, so the
-- scheduler can also be pointed at an existing platform database: there, only the indexes
-- the jobs need are added. Column names are a contract: tests and tools seed them.

create table if not exists users (
  id text primary key,
  email text,
  created_at timestamptz not null default now()
);

create table if not exists user_sessions (
  session_id text primary key,
  user_id text,
  started_at timestamptz not null default now(),
  last_activity_at timestamptz not null default now(),
  ended_at timestamptz,
  ip_address text,
  country text,
  user_agent text,
  is_bot boolean not null default false,
  is_scanner boolean not null default false,
  fingerprint_hash text
);
-- cleanup_inactive_sessions reads only open sessions, by idle time.
create index if not exists user_sessions_open_idle_idx on user_sessions (last_activity_at) where ended_at is null;
-- malicious_ip_blacklist reads the last 24 hours of sessions.
create index if not exists user_sessions_started_at_idx on user_sessions (started_at);

create table if not exists user_contexts (
  context_id text primary key,
  user_id text,
  session_id text,
  name text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index if not exists user_contexts_created_at_idx on user_contexts (created_at);

create table if not exists task_messages (
  id bigserial primary key,
  context_id text,
  role text,
  content text,
  created_at timestamptz not null default now()
);
create index if not exists task_messages_context_id_idx on task_messages (context_id);

create table if not exists logs (
  id text primary key,
  "timestamp" timestamptz not null default now(),
  level text,
  module text,
  message text,
  user_id text,
  session_id text,
  context_id text
);
create index if not exists logs_timestamp_idx on logs ("timestamp");
create index if not exists logs_user_id_idx on logs (user_id) where user_id is not null;

create table if not exists mcp_tool_executions (
  mcp_execution_id text primary key,
  context_id text,
  tool_name text,
  created_at timestamptz not null default now()
);
create index if not exists mcp_tool_executions_context_id_idx on mcp_tool_executions (context_id);

create table if not exists oauth_auth_codes (
  code text primary key,
  expires_at timestamptz not null,
  used_at timestamptz
);
create index if not exists oauth_auth_codes_expires_at_idx on oauth_auth_codes (expires_at);
create index if not exists oauth_auth_codes_used_at_idx on oauth_auth_codes (used_at) where used_at is not null;

create table if not exists oauth_refresh_tokens (
  token_id text primary key,
  expires_at timestamptz not null
);
create index if not exists oauth_refresh_tokens_expires_at_idx on oauth_refresh_tokens (expires_at);

create table if not exists fingerprint_reputation (
  fingerprint_hash text primary key,
  first_seen_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  total_session_count int not null default 0,
  total_request_count bigint not null default 0,
  peak_requests_per_minute real not null default 0,
  sustained_high_velocity_minutes int not null default 0,
  is_flagged boolean not null default false,
  flag_reason text,
  flagged_at timestamptz,
  reputation_score int not null default 50,
  abuse_incidents int not null default 0,
  last_abuse_at timestamptz,
  last_ip_address text,
  updated_at timestamptz not null default now()
);
create index if not exists fingerprint_reputation_last_seen_at_idx on fingerprint_reputation (last_seen_at);

create table if not exists banned_ips (
  ip_address text primary key,
  reason text,
  banned_at timestamptz not null default now(),
  expires_at timestamptz,
  ban_count int not null default 1,
  is_permanent boolean not null default false,
  source_fingerprint text,
  ban_source text not null default 'manual'
);
create index if not exists banned_ips_expires_at_idx on banned_ips (expires_at) where not is_permanent;
