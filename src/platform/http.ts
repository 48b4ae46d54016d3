import type { Queryable } from "../engine/db/pool.ts";
import { readSql } from "../engine/db/sql-file.ts";
import type { PackHttp, PanelData } from "../engine/http/types.ts";
import { listBans } from "./security/bans.ts";
import { listServices } from "./services/registry.ts";

// The platform's part of every node's HTTP endpoint (SchedulerPack.http): /api/services and
// /api/bans, and the dashboard panels drawn from them. Read-only, like the engine's API.

const BANS_SUMMARY = readSql(import.meta.url, "bans_summary.sql");
/** The newest bans in force listed under the summary; the CLI's `bans list` has them all. */
const BANS_LISTED = 20;

async function services(db: Queryable): Promise<PanelData> {
  const rows = await listServices(db, null);
  const byStatus = new Map<string, number>();
  for (const row of rows) byStatus.set(String(row.status), (byStatus.get(String(row.status)) ?? 0) + 1);
  const hosts = new Set(rows.map((row) => row.host));
  return {
    summary: [{ label: "hosts", value: hosts.size }, ...[...byStatus].sort().map(([status, n]) => ({ label: status, value: n }))],
    rows,
  };
}

async function bans(db: Queryable): Promise<PanelData> {
  const [summary, rows] = await Promise.all([
    db.query<{ active: number; permanent: number; last_24h: number; by_source: Record<string, number> }>(BANS_SUMMARY),
    listBans(db, { activeOnly: true, limit: BANS_LISTED }),
  ]);
  const s = summary.rows[0]!;
  return {
    summary: [
      { label: "active", value: s.active },
      { label: "permanent", value: s.permanent },
      { label: "new in 24 h", value: s.last_24h },
      ...Object.entries(s.by_source).sort().map(([source, n]) => ({ label: `by ${source}`, value: n })),
    ],
    rows: rows as unknown as Record<string, unknown>[],
  };
}

export function platformHttp({ db }: { db: Queryable }): PackHttp {
  return {
    api: { services: () => services(db), bans: () => bans(db) },
    panels: [
      {
        id: "services",
        title: "Services",
        api: "services",
        groupBy: "host",
        empty: "no services registered (systemprompt-scheduler services add)",
        columns: [
          { key: "name", label: "name" },
          { key: "module_name", label: "module" },
          { key: "port", label: "port", kind: "number" },
          { key: "desired_status", label: "desired" },
          { key: "status", label: "status", kind: "status" },
          { key: "pid", label: "pid", kind: "number" },
          { key: "restart_count", label: "restarts", kind: "number" },
          { key: "status_changed_at", label: "since", kind: "time" },
          { key: "last_error", label: "last error" },
        ],
      },
      {
        id: "bans",
        title: `Active bans (newest ${BANS_LISTED})`,
        api: "bans",
        empty: "no ban in force",
        columns: [
          { key: "ip_address", label: "address" },
          { key: "ban_source", label: "source" },
          { key: "reason", label: "reason" },
          { key: "banned_at", label: "banned", kind: "time" },
          { key: "expires_at", label: "expires", kind: "time" },
          { key: "ban_count", label: "bans", kind: "number" },
        ],
      },
    ],
  };
}
