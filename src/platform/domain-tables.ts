import type { AdoptedTable } from "../engine/pack.ts";

// The platform's domain tables (sql/platform/001, 004) and the columns the jobs, the ban
// policy and the service reconciler read or write. When the platform created a table before
// the scheduler, it keeps its own columns and constraints; migrate only checks these exist
// (and adds indexes and triggers), and never alters one of them. services' columns that
// 004 adds when missing (command, args, the observed state) are not listed.
export const platformDomainTables: readonly AdoptedTable[] = [
  { table: "users", columns: ["id"] },
  {
    table: "user_sessions",
    columns: ["session_id", "started_at", "last_activity_at", "ended_at", "ip_address", "country", "is_bot", "is_scanner"],
  },
  { table: "user_contexts", columns: ["context_id", "created_at"] },
  { table: "task_messages", columns: ["context_id"] },
  { table: "logs", columns: ["timestamp", "user_id"] },
  { table: "mcp_tool_executions", columns: ["context_id"] },
  { table: "oauth_auth_codes", columns: ["expires_at", "used_at"] },
  { table: "oauth_refresh_tokens", columns: ["expires_at"] },
  {
    table: "fingerprint_reputation",
    columns: [
      "fingerprint_hash", "last_seen_at", "total_session_count", "total_request_count", "peak_requests_per_minute", "sustained_high_velocity_minutes",
      "is_flagged", "flag_reason", "flagged_at", "reputation_score", "abuse_incidents", "last_abuse_at", "last_ip_address", "updated_at",
    ],
  },
  { table: "banned_ips", columns: ["ip_address", "reason", "banned_at", "expires_at", "ban_count", "is_permanent", "source_fingerprint", "ban_source"] },
  { table: "services", columns: ["name", "module_name", "host", "port", "desired_status", "status", "pid"] },
];
