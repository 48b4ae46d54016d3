// Real scheduler nodes for the cluster tests: `node src/cli/main.ts start` child processes on
// the fixture task folder, with short cluster timings, and helpers to read what they did.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { projectRoot } from "../../../src/engine/db/sql-file.ts";
import type { Queryable } from "../../../src/engine/db/pool.ts";
import { eventually } from "../../helpers/wait.ts";
export { freePort } from "../../../scripts/free-port.ts";

export const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures");

/** Short timings: heartbeat 500 ms, dead after 4 s (8 beats), rescue every 500 ms. */
export const DEAD_AFTER_MS = 4000;
export const fastCluster = {
  SCHEDULER_HEARTBEAT_MS: "500",
  SCHEDULER_NODE_DEAD_AFTER_MS: String(DEAD_AFTER_MS),
  SCHEDULER_RESCUE_INTERVAL_MS: "500",
};

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

// Node processes must never outlive the test (or bench) process, whatever ends it.
const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

export class NodeProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[] = [];
  readonly exited: Promise<number | null>;
  nodeId = "";
  exitCode: number | null | undefined = undefined;
  stderrTail = "";
  readonly name: string;

  /** `command`: how the node is started (default `node src/cli/main.ts start`; e.g. ["npm", "start"]). */
  constructor(name: string, env: Record<string, string>, command: string[] = [process.execPath, path.join(projectRoot, "src/cli/main.ts"), "start"]) {
    this.name = name;
    this.child = spawn(command[0]!, command.slice(1), {
      cwd: projectRoot,
      env: {
        ...process.env,
        LOG_LEVEL: "info",
        SCHEDULER_TASKS_DIR: path.join(fixtures, "tasks"),
        SCHEDULER_CRONTAB: path.join(fixtures, "crontab.fill"),
        // Empty means "the default" to the config loader; a lone comma means none.
        SCHEDULER_BOOTSTRAP_JOBS: ",",
        SCHEDULER_CONCURRENCY: "3",
        SCHEDULER_SHUTDOWN_GRACE_MS: "10000",
        // services run nothing a host does not allow; the tests' services run Node (and never
        // a list or file inherited from the environment of whoever runs the tests)
        SCHEDULER_SERVICES_ALLOWED_COMMANDS: process.execPath,
        SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE: "",
        ...fastCluster,
        ...env,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.add(this.child);
    let buffer = "";
    this.child.stderr!.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) this.take(line);
    });
    this.exited = new Promise((resolve) => {
      this.child.on("close", (code) => {
        children.delete(this.child);
        if (buffer) this.take(buffer);
        this.exitCode = code;
        resolve(code);
      });
    });
  }

  private take(line: string): void {
    this.stderrTail = (this.stderrTail + line + "\n").slice(-4000);
    try {
      const parsed = JSON.parse(line) as LogLine;
      this.logs.push(parsed);
      if (!this.nodeId && parsed.msg === "scheduler started" && typeof parsed.node === "string") this.nodeId = parsed.node;
    } catch {
      // not a log line (a stack trace): kept in stderrTail only
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves once the node logged "scheduler started"; fails with its stderr if it exits. */
  async started(timeoutMs = 30_000): Promise<this> {
    await eventually(async () => {
      if (this.exitCode !== undefined) throw new Error(`${this.name} exited with ${this.exitCode}:\n${this.stderrTail}`);
      return this.nodeId !== "";
    }, { timeoutMs, intervalMs: 50, what: `${this.name} to start` }).catch((error: Error) => {
      throw new Error(`${error.message}\n${this.stderrTail}`);
    });
    return this;
  }

  logged(pattern: RegExp): LogLine[] {
    return this.logs.filter((line) => pattern.test(line.msg));
  }

  kill(signal: NodeJS.Signals): void {
    if (this.exitCode === undefined) this.child.kill(signal);
  }

  /** SIGTERM and wait for the exit code (SIGKILL after `timeoutMs`). */
  async stop(timeoutMs = 20_000): Promise<number | null> {
    this.kill("SIGTERM");
    const timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

export function startNodes(count: number, env: Record<string, string>, prefix = "node"): NodeProcess[] {
  return Array.from({ length: count }, (_, i) => new NodeProcess(`${prefix}${i + 1}`, { SCHEDULER_HOST: `${prefix}-${i + 1}`, ...env }));
}

/** Queues a run of a fixture task in its own queue (as the CLI and crontab do), tagged. */
export async function addJob(db: Queryable, task: string, payload: Record<string, unknown>, options: { queue?: boolean; maxAttempts?: number } = {}): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    "select id from graphile_worker.add_job($1, $2::json, queue_name => $3, max_attempts => $4)",
    [task, JSON.stringify(payload), options.queue === false ? null : task, options.maxAttempts ?? 25],
  );
  return rows[0]!.id;
}

export interface RunRow {
  id: string;
  job_id: string;
  job_name: string;
  task: string;
  attempt: number;
  node_id: string;
  status: string;
  tag: string | null;
  scheduled_for: Date | null;
  started_at: Date;
  finished_at: Date | null;
  error: string | null;
}

export async function runs(db: Queryable, where = "true", values: unknown[] = []): Promise<RunRow[]> {
  const { rows } = await db.query<RunRow>(
    `select id, job_id, job_name, task, attempt, node_id, status, coalesce(details->>'tag', payload->>'tag') as tag, scheduled_for, started_at, finished_at, error
     from scheduler.job_runs where ${where} order by id`,
    values,
  );
  return rows;
}

/**
 * Pairs of finished runs of one task whose [started_at, finished_at] overlap: must be none.
 * Only runs that ended on their own count: an abandoned run's finished_at is when it was
 * found abandoned, not when it stopped.
 */
export function overlaps(rows: RunRow[]): string[] {
  const problems: string[] = [];
  const byTask = new Map<string, RunRow[]>();
  for (const row of rows) {
    if (row.status === "success" || row.status === "failed") byTask.set(row.task, [...(byTask.get(row.task) ?? []), row]);
  }
  for (const [task, list] of byTask) {
    const spans = list.map((row) => ({ row, start: row.started_at.getTime(), end: (row.finished_at ?? new Date()).getTime() })).sort((a, b) => a.start - b.start);
    for (let i = 1; i < spans.length; i++) {
      const previous = spans[i - 1]!;
      const current = spans[i]!;
      if (current.start < previous.end) problems.push(`${task}: run ${current.row.id} (${current.row.node_id}) started before run ${previous.row.id} (${previous.row.node_id}) ended`);
    }
  }
  return problems;
}

/** Jobs still locked by anyone, and jobs still queued. */
export async function queueState(db: Queryable): Promise<{ locked: number; queued: number; lockedQueues: number }> {
  const { rows } = await db.query<{ locked: number; queued: number; locked_queues: number }>(
    `select (select count(*) from graphile_worker.jobs where locked_at is not null)::int as locked,
            (select count(*) from graphile_worker.jobs where attempts < max_attempts)::int as queued,
            (select count(*) from graphile_worker._private_job_queues where locked_at is not null)::int as locked_queues`,
  );
  return { locked: rows[0]!.locked, queued: rows[0]!.queued, lockedQueues: rows[0]!.locked_queues };
}


/** Successful runs per tag: the tags never run, and those run more than once. */
export function tally(rows: RunRow[], tags: string[]): { lost: string[]; duplicates: string[] } {
  const successes = new Map<string, number>();
  for (const row of rows) if (row.status === "success" && row.tag) successes.set(row.tag, (successes.get(row.tag) ?? 0) + 1);
  const known = new Set(tags);
  return {
    lost: tags.filter((tag) => !successes.has(tag)),
    duplicates: [...successes].filter(([tag, n]) => n > 1 || !known.has(tag)).map(([tag]) => tag),
  };
}

/** Cron ticks of `task`: minutes between the first and last tick with no successful run, and those with more than one. */
export function tickTally(rows: RunRow[], from?: number): { ticks: number; missing: number[]; duplicates: number[] } {
  const perTick = new Map<number, number>();
  for (const row of rows) {
    if (!row.scheduled_for) continue;
    const ts = row.scheduled_for.getTime();
    perTick.set(ts, (perTick.get(ts) ?? 0) + (row.status === "success" ? 1 : 0));
  }
  const keys = [...perTick.keys()];
  const missing: number[] = [];
  if (keys.length === 0) return { ticks: 0, missing, duplicates: [] };
  const last = Math.max(...keys);
  let ticks = 0;
  for (let ts = from ?? Math.min(...keys); ts <= last; ts += 60_000) {
    ticks += 1;
    if (!perTick.get(ts)) missing.push(ts);
  }
  return { ticks, missing, duplicates: [...perTick].filter(([, n]) => n > 1).map(([ts]) => ts) };
}

/** Feeds tagged jobs round-robin to work_a/b/c until stopped; returns the tags it queued. */
export function feedJobs(db: Queryable, prefix: string, options: { everyMs?: number; ms?: number } = {}): { stop(): Promise<string[]>; tags: string[] } {
  const tags: string[] = [];
  let feeding = true;
  const loop = (async () => {
    for (let i = 0; feeding; i++) {
      const tag = `${prefix}-${i}`;
      try {
        await addJob(db, ["work_a", "work_b", "work_c"][i % 3]!, { ms: options.ms ?? 80, tag });
        tags.push(tag);
      } catch {
        // the database is down: this job was never queued, so it cannot be lost
      }
      await new Promise((resolve) => setTimeout(resolve, options.everyMs ?? 100));
    }
  })();
  return {
    tags,
    async stop() {
      feeding = false;
      await loop;
      return tags;
    },
  };
}
