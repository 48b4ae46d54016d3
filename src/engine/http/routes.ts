import type { Queryable } from "../db/pool.ts";
import type { EngineConfig } from "../config.ts";
import { SchedulerError } from "../errors.ts";
import type { SchedulerPack } from "../pack.ts";
import type { TaskChecker } from "../runner/manual.ts";
import { actionRoutes } from "./actions.ts";
import { apiRoutes } from "./api.ts";
import { ACTIONS_OFF_HINT } from "./guard.ts";
import type { HttpRoutes } from "./server.ts";
import type { ApiHandler, DashboardPanel } from "./types.ts";

// A node's routes: the engine's API and actions, the packs' endpoints and panels, and
// /api/dashboard, which tells the page what this node offers.

export interface NodeRoutesOptions {
  /** The node's own pool: the actions, which do what the CLI's commands do. */
  db: Queryable;
  /** The endpoint's own small pool (http-pool.ts): every read of the API, the engine's and the packs'. */
  reads: Queryable;
  config: EngineConfig;
  packs: readonly SchedulerPack[];
  tasks: TaskChecker & { hasDryRun(task: string): boolean };
  nodeId: string;
  host: string;
  version: string;
  deadAfterMs: number;
  token: string | null;
}

export function nodeRoutes(options: NodeRoutesOptions, probes: Pick<HttpRoutes, "readiness" | "metrics">): HttpRoutes {
  const { db, reads, tasks, deadAfterMs, token } = options;
  const canDryRun = (task: string) => tasks.hasDryRun(task);
  const api: Record<string, ApiHandler> = apiRoutes({ db: reads, deadAfterMs, canDryRun });
  const panels: DashboardPanel[] = [];
  api.dashboard = async () => ({
    node_id: options.nodeId,
    host: options.host,
    version: options.version,
    actions: token !== null,
    actions_hint: token === null ? ACTIONS_OFF_HINT : null,
    dead_after_ms: deadAfterMs,
    panels,
  });
  for (const pack of options.packs) {
    const contributed = pack.http?.({ db: reads, config: options.config });
    if (!contributed) continue;
    for (const [name, handler] of Object.entries(contributed.api)) {
      // A pack may add endpoints, never replace the engine's (or another pack's).
      if (Object.hasOwn(api, name)) throw new SchedulerError("pack_http_conflict", `pack '${pack.name}' adds /api/${name}, which the engine or another pack serves already`, { hint: "give the pack's endpoint another name (SchedulerPack.http)", exitCode: 2 });
      api[name] = handler;
    }
    panels.push(...contributed.panels);
  }
  return { ...probes, api, token, actions: actionRoutes({ db, tasks: { names: () => tasks.names(), checkPayload: (task, payload) => tasks.checkPayload(task, payload), canDryRun }, deadAfterMs, nodeId: options.nodeId }) };
}
