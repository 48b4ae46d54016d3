// Benchmark: one reconcile pass over 200 services that need starting, then no-op passes over
// the 200 running ones against a naive baseline measured in the same run, on the same services:
// one DB query per service (by name), ports probed one after another, and the process table
// read once per pass (as ours does), each pass observing and planning every service with the
// same planService. Both sides' plans (runtime, action, recorded update per service) must be
// equal in every round, or the bench fails. Ours: one query for the host's rows, one process
// table read, ports probed in parallel, plus the host lock and the (empty) observation write.
//
//   node scripts/with-postgres.ts bench/reconcile.ts        (SERVICES=200 ROUNDS=10 to change sizes)
//
// Uses TEST_DATABASE_URL or DATABASE_URL as the server to create a scratch database on (dropped
// at the end); with neither, starts an embedded PostgreSQL in a temporary folder. Each service
// is a tiny Node TCP server (about 8 MB of private memory each).
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { startEmbeddedPostgres } from "../src/engine/db/embedded/index.ts";
import { createLogger } from "../src/engine/log.ts";
import { observe } from "../src/platform/services/observe.ts";
import { planService, type Plan } from "../src/platform/services/plan.ts";
import { portAnswers } from "../src/platform/services/ports.ts";
import { readMarker, readProcessTable } from "../src/platform/services/proc.ts";
import { reconcileHost, stopHostServices, type ReconcileContext } from "../src/platform/services/reconcile.ts";
import { resolvePolicy } from "../src/platform/services/settings.ts";
import { listHostServices } from "../src/platform/services/store.ts";
import type { ServiceRow } from "../src/platform/services/types.ts";

const SERVICES = Number(process.env.SERVICES ?? 200);
const ROUNDS = Number(process.env.ROUNDS ?? 10);
const TARGET_NOOP_MS = 250;
const HOST = `bench-${process.pid}`;
const SERVER = "require('net').createServer((c) => c.destroy()).listen(Number(process.env.PORT), '127.0.0.1')";

const logger = createLogger("warn", false);

async function adminDatabase(): Promise<{ stop(): Promise<void> }> {
  const given = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
  if (given) {
    process.env.TEST_DATABASE_URL = given;
    return { stop: async () => {} };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-bench-pg-"));
  fs.chmodSync(dir, 0o755);
  const server = await startEmbeddedPostgres({ dataDir: path.join(dir, "data"), port: 20_000 + Math.floor(Math.random() * 20_000), logger });
  process.env.TEST_DATABASE_URL = server.connectionString;
  return {
    async stop() {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Ports the kernel hands out as free right now (all held at once, so no duplicates). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<net.Server>((resolve, reject) => {
      const server = net.createServer();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve(server));
    })),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

const stats = (samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)]!, min: sorted[0]!, max: sorted[sorted.length - 1]! };
};
const ms = (value: number) => `${value.toFixed(1)} ms`;

/** The baseline: what a straightforward reconciler does, service by service (one process-table read per pass). */
async function naivePass(ctx: ReconcileContext, names: string[]): Promise<{ ms: number; plans: Plan[] }> {
  const began = performance.now();
  const table = readProcessTable();
  const now = new Date();
  const plans: Plan[] = [];
  for (const name of names) {
    const { rows } = await ctx.pool.query<ServiceRow>(
      "select *, process_start_ticks::text as process_start_ticks, instance_id::text as instance_id, xmin::text as version from services where name = $1 and host = $2",
      [name, ctx.host],
    );
    const row = rows[0]!;
    const open = row.port !== null && (await portAnswers(row.port));
    plans.push(planService(row, observe(row, table, open, readMarker), { now, policy: ctx.policy, protectedPorts: ctx.protectedPorts }));
  }
  return { ms: performance.now() - began, plans };
}

/** What a pass decided, per service: compared between the two sides. */
function decisions(plans: Plan[]): string {
  return JSON.stringify(
    [...plans]
      .sort((a, b) => a.row.name.localeCompare(b.row.name))
      .map((plan) => [plan.row.name, plan.runtime, plan.tableAction, plan.action, plan.update && [plan.update.status, plan.update.consecutive_failures, plan.update.last_error]]),
  );
}

async function main(): Promise<void> {
  const admin = await adminDatabase();
  const { createTestDatabase } = await import("../test/helpers/db.ts");
  const db = await createTestDatabase();
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-bench-logs-"));
  const ctx: ReconcileContext = {
    pool: db.pool, host: HOST, logger, logDir, children: null, protectedPorts: new Set(),
    policy: resolvePolicy({ stopGraceMs: 3000, startTimeoutMs: 120_000 }),
    concurrency: 8,
    allowlist: { entries: [process.execPath], source: "the benchmark" },
  };
  try {
    const ports = await freePorts(SERVICES);
    await db.pool.query(
      `insert into services (name, module_name, host, command, args, port)
       select 'svc-' || lpad(i::text, 4, '0'), 'agent', $1, $2, array['-e', $3], port
       from unnest($4::int[]) with ordinality as p(port, i)`,
      [HOST, process.execPath, SERVER, ports],
    );
    const names = (await listHostServices(db.pool, HOST)).map((row) => row.name);
    const version = (await db.pool.query("show server_version")).rows[0].server_version as string;
    console.log(`reconcile benchmark: ${SERVICES} services on one host, ${os.availableParallelism()} CPU(s), Node ${process.version}, PostgreSQL ${version}`);

    // 1. the pass that starts them all, then how long until every port answers
    let began = performance.now();
    const start = (await reconcileHost(ctx)).result;
    const startMs = performance.now() - began;
    if (start.started !== SERVICES) throw new Error(`expected ${SERVICES} starts, got ${start.started}: ${JSON.stringify(start.failed.slice(0, 3))}`);
    let runningCount = 0;
    while (runningCount < SERVICES) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      await reconcileHost(ctx);
      runningCount = Number((await db.pool.query("select count(*) from services where host = $1 and status = 'running'", [HOST])).rows[0].count);
      if (performance.now() - began > 120_000) throw new Error(`only ${runningCount} of ${SERVICES} running after 120 s`);
    }
    const allRunningMs = performance.now() - began;

    // 2. passes over services that need nothing, against the naive baseline, rounds alternating
    const ours: number[] = [];
    const naive: number[] = [];
    let reference: string | null = null;
    const check = (side: string, plans: Plan[]) => {
      const got = decisions(plans);
      reference ??= got;
      if (got !== reference) throw new Error(`${side}: the pass decided differently from the first no-op pass:\n  ${got.slice(0, 400)}\n  ${reference.slice(0, 400)}`);
      if (plans.length !== SERVICES || plans.some((plan) => plan.runtime !== "running" || plan.action !== "none")) {
        throw new Error(`${side}: expected ${SERVICES} running services and no action, got ${JSON.stringify(plans.find((plan) => plan.runtime !== "running" || plan.action !== "none")?.reason)}`);
      }
    };
    for (let i = 0; i < ROUNDS; i += 1) {
      for (const side of i % 2 === 0 ? ["ours", "naive"] : ["naive", "ours"]) {
        if (side === "ours") {
          began = performance.now();
          const pass = await reconcileHost(ctx);
          ours.push(performance.now() - began);
          if (pass.result.actions.length > 0) throw new Error(`a no-op pass acted: ${JSON.stringify(pass.result.actions.slice(0, 3))}`);
          check("ours", pass.plans);
        } else {
          const pass = await naivePass(ctx, names);
          naive.push(pass.ms);
          check("naive", pass.plans);
        }
      }
    }

    const noop = stats(ours);
    const base = stats(naive);
    console.log("");
    console.log(`start pass (${SERVICES} need starting):   ${ms(startMs)}  (${ms(startMs / SERVICES)} per service; all ports answering after ${ms(allRunningMs)})`);
    console.log(`no-op pass, ours  (${SERVICES} running, ${ROUNDS} rounds): median ${ms(noop.median)}  min ${ms(noop.min)}  max ${ms(noop.max)}  target < ${TARGET_NOOP_MS} ms: ${noop.median < TARGET_NOOP_MS ? "met" : "MISSED"}`);
    console.log(`no-op pass, naive (${SERVICES} running, ${ROUNDS} rounds): median ${ms(base.median)}  min ${ms(base.min)}  max ${ms(base.max)}  (a query and a sequential port probe per service, one process-table read per pass)`);
    console.log(`same decisions on both sides in every round: ${SERVICES} services running, no action`);
    console.log(`\nsummary: no-op reconcile pass over ${SERVICES} running services (${os.availableParallelism()} CPUs, PostgreSQL ${version}, ${ROUNDS} rounds per side, alternating): ` +
      `ours median ${ms(noop.median)} vs naive median ${ms(base.median)} = ${(base.median / noop.median).toFixed(1)}x (min vs min: ${(base.min / noop.min).toFixed(1)}x)`);
  } finally {
    const stopBegan = performance.now();
    const stopped = await stopHostServices(ctx).catch((error: unknown) => {
      console.error("stopping the services failed:", error);
      return null;
    });
    if (stopped) console.log(`\n(stopped ${stopped.stopped} services in ${ms(performance.now() - stopBegan)}${stopped.failed.length ? `, ${stopped.failed.length} failed` : ""})`);
    await db.drop();
    await admin.stop();
    fs.rmSync(logDir, { recursive: true, force: true });
  }
}

await main();
