import type { Queryable } from "../db/pool.ts";
import { readSql } from "../db/sql-file.ts";
import { listNodes } from "../cluster/list.ts";
import { describeSchedule } from "../crontab/words.ts";
import { auditApi } from "./audit.ts";
import { HttpProblem, JsonText, type ApiHandler } from "./types.ts";

// JSON under /api/, read-only: one handler per endpoint, each one query (the dashboard's
// page is built from these and nothing else). Packs add theirs (SchedulerPack.http).

const SCHEDULES = readSql(import.meta.url, "schedules.sql");
const RECENT_RUNS = readSql(import.meta.url, "recent_runs.sql");
const RUNS = readSql(import.meta.url, "runs.sql");
const RUN = readSql(import.meta.url, "run.sql");

export const RUNS_DEFAULT_LIMIT = 50;
export const RUNS_MAX_LIMIT = 500;
const RUN_STATUSES = new Set(["running", "success", "failed", "abandoned", "skipped", "missed"]);

export interface ApiContext {
  db: Queryable;
  deadAfterMs: number;
  /** Whether this node can do a dry run of a task (its job has an `enforce` field). */
  canDryRun(task: string): boolean;
}

function limitOf(query: URLSearchParams): number {
  const text = query.get("limit");
  if (text === null) return RUNS_DEFAULT_LIMIT;
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1 || limit > RUNS_MAX_LIMIT) throw new HttpProblem(400, `limit must be a whole number from 1 to ${RUNS_MAX_LIMIT}, got '${text}'`);
  return limit;
}

/** The engine's endpoints, by path after /api/ (`name/:id` takes an id). */
export function apiRoutes(context: ApiContext): Record<string, ApiHandler> {
  const { db } = context;
  return {
    // Every schedule as scheduled_jobs shows it, with what the dashboard adds: the schedule
    // in words, its last 30 runs, and whether a dry run is offered. The runs arrive as JSON
    // text and are put in as they are: with 1,000 schedules they are 30,000 objects that
    // parsing and serializing again would spend more time on than the database does.
    schedules: async () => {
      const [schedules, recentRuns] = await Promise.all([db.query<Record<string, unknown>>(SCHEDULES), db.query<{ job_name: string; runs: string | null }>(RECENT_RUNS)]);
      const recent = new Map(recentRuns.rows.map((row) => [row.job_name, row.runs]));
      const answers = schedules.rows.map((row) => {
        const described = JSON.stringify({ ...row, schedule_words: describeSchedule(String(row.schedule)), dry_run_available: context.canDryRun(String(row.task)) });
        return `${described.slice(0, -1)},"recent_runs":${recent.get(String(row.job_name)) ?? "[]"}}`;
      });
      return new JsonText(`[${answers.join(",")}]`);
    },
    runs: async ({ query }) => {
      const status = query.get("status");
      if (status !== null && !RUN_STATUSES.has(status)) throw new HttpProblem(400, `status must be one of ${[...RUN_STATUSES].join(", ")}, got '${status}'`);
      return (await db.query(RUNS, [query.get("job") || null, status, limitOf(query)])).rows;
    },
    "runs/:id": async ({ id }) => {
      if (!id || !/^\d{1,18}$/.test(id)) throw new HttpProblem(400, `a run id is a whole number, got '${id}'`);
      const row = (await db.query(RUN, [id])).rows[0];
      if (!row) throw new HttpProblem(404, `no run ${id} in the history`, "it may have been pruned (SCHEDULER_HISTORY_RETENTION_DAYS)");
      return row;
    },
    nodes: async ({ query }) => listNodes(db, { deadAfterMs: context.deadAfterMs, all: query.get("all") === "true" }),
    audit: auditApi(db),
  };
}

/** routes[name] when it is one of its own routes: `__proto__`, `constructor` and the like are not routes. */
function ownRoute(routes: Record<string, ApiHandler>, name: string): ApiHandler | null {
  return Object.hasOwn(routes, name) ? routes[name]! : null;
}

/** The handler for `path` (after /api/), and the id it names; null when there is none. */
export function findRoute(routes: Record<string, ApiHandler>, path: string): { handler: ApiHandler; id?: string } | null {
  const exact = ownRoute(routes, path);
  if (exact) return { handler: exact };
  const slash = path.lastIndexOf("/");
  if (slash <= 0) return null;
  const pattern = ownRoute(routes, `${path.slice(0, slash)}/:id`);
  if (!pattern) return null;
  let id: string;
  try {
    id = decodeURIComponent(path.slice(slash + 1));
  } catch {
    throw new HttpProblem(400, `'${path.slice(slash + 1)}' is not a valid id`);
  }
  return { handler: pattern, id };
}
