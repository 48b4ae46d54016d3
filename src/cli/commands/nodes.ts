import { listNodes } from "../../engine/cluster/list.ts";
import type { Command } from "../command.ts";
import { renderTable, toJson } from "../table.ts";

function age(ms: number): string {
  if (ms < 1000) return `${ms} ms ago`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s ago`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min ago`;
  return `${Math.round(ms / 3_600_000)} h ago`;
}

/** The node's clock against the database's: `+100.2 s` (ahead), `-0.0 s`, `-` (not measured). */
function skew(ms: number | null): string {
  if (ms === null) return "-";
  return `${ms < 0 ? "-" : "+"}${(Math.abs(ms) / 1000).toFixed(1)} s`;
}

export const nodesCommand: Command = {
  name: "nodes",
  readsOnly: true,
  summary: "scheduler nodes: host, pid, started, last heartbeat, alive/dead, running jobs, clock skew",
  usage: `systemprompt-scheduler nodes [--all] [--json]

A node is dead once silent for SCHEDULER_NODE_DEAD_AFTER_MS (default 30 s); a live node then
releases the jobs it held (RESCUED BY). Stopped nodes (clean shutdown) are listed with --all.
CLOCK is the node's clock minus the database's, as its heartbeat measured it (+: ahead); cron
ticks follow the database's clock, a node warns in its log past 1 s.`,
  options: { all: { type: "boolean" }, json: { type: "boolean" } },
  async run(ctx, args) {
    const rows = await listNodes(await ctx.pool(), { deadAfterMs: ctx.config.SCHEDULER_NODE_DEAD_AFTER_MS, all: args.values.all === true });
    if (args.values.json) {
      ctx.print(toJson(rows.map((row) => ({ ...row, silent_ms: Number(row.silent_ms) }))));
      return 0;
    }
    ctx.print(
      renderTable(
        rows.map((row) => ({
          ...row,
          heartbeat: row.state === "stopped" ? "-" : age(Number(row.silent_ms)),
          clock: skew(row.clock_skew_ms),
          state: row.state === "dead" && !row.rescued_at ? "dead (rescue pending)" : row.state,
        })),
        [
          { key: "node_id", header: "NODE" },
          { key: "host", header: "HOST" },
          { key: "pid", header: "PID" },
          { key: "started_at", header: "STARTED" },
          { key: "heartbeat", header: "LAST HEARTBEAT" },
          { key: "state", header: "STATE" },
          { key: "running_jobs", header: "RUNNING JOBS" },
          { key: "clock", header: "CLOCK" },
          { key: "rescued_by", header: "RESCUED BY" },
        ],
      ),
    );
    const alive = rows.filter((row) => row.state === "alive").length;
    ctx.print(`\n${alive} alive, ${rows.length - alive} not alive`);
    return 0;
  },
};
