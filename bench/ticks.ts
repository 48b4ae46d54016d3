// bench:ticks — how late a tick's runs start with 1,000 crontab entries (BENCH_TICK_ENTRIES):
// the time from each tick (by the database's clock, on this machine the same as the node's)
// to the first line of the job's function, over BENCH_TICKS ticks per side.
//
// - new: a scheduler node (startScheduler, a defineJob job: the path users take) with the
//   entries, 20 of them firing on even minutes, the others at a random minute and hour in one
//   of three zones (as per-tenant schedules would be).
// - baseline: bare graphile-worker 0.18 (run() with its own cron) with the same entries (its
//   crontab takes no zones: the same minutes and hours in UTC), 20 firing on odd minutes, on a
//   database of its own.
//
// Both run at once, each its own minutes, so each is measured warm and both see the same
// machine; concurrency 4 on both. Checked first: each side ran each of its ticks' jobs exactly
// once. Printed: p50, p99 and max of the start delay per side, and the ratio of the p99s.
import { Logger, run, type Runner } from "graphile-worker";
import { defineJob, startScheduler } from "../src/index.ts";
import { createTestDatabase, testLogger, type TestDatabase } from "../test/helpers/db.ts";

const ENTRIES = Number(process.env.BENCH_TICK_ENTRIES ?? 1000);
const TICKS = Number(process.env.BENCH_TICKS ?? 5);
const PER_TICK = 20;
const ZONES = ["UTC", "Europe/Berlin", "America/New_York"];
const TARGET_P99_MS = 100;
const MINUTE = 60_000;
if (!process.env.TEST_DATABASE_URL && process.env.DATABASE_URL) process.env.TEST_DATABASE_URL = process.env.DATABASE_URL;

/** Start delays seen, per side: `${entry}@${tick}` → ms from the tick to the function's first line. */
const seen = { new: new Map<string, number[]>(), baseline: new Map<string, number[]>() };
function observe(side: keyof typeof seen, identifier: string, tickIso: string): void {
  const key = `${identifier}@${tickIso}`;
  const delays = seen[side].get(key) ?? [];
  delays.push(Date.now() - Date.parse(tickIso));
  seen[side].set(key, delays);
}

// Seeded, so that both sides and every run of the bench have the same entries.
let seed = 7;
const random = (n: number) => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed % n;
};
const spread = Array.from({ length: ENTRIES - PER_TICK }, (_, i) => ({ id: `tenant_${i}`, minute: random(60), hour: random(24), zone: ZONES[i % ZONES.length]! }));

/** The crontab of a side. The baseline's jobs carry their entry in the payload (graphile-worker's cron does not pass it on). */
function crontabFor(side: keyof typeof seen, task: string): string {
  // graphile-worker's crontab takes no step over a range: the minutes listed.
  const minutes = Array.from({ length: 30 }, (_, i) => 2 * i + (side === "new" ? 0 : 1)).join(",");
  const line = (fields: string, id: string, zone?: string) =>
    side === "new" ? `${fields} ${task} ?id=${id}&max=1${zone ? `&tz=${zone}` : ""}` : `${fields} ${task} ?id=${id}&max=1 {"entry":"${id}"}`;
  const lines = Array.from({ length: PER_TICK }, (_, i) => line(`${minutes} * * * *`, `every_${i}`));
  for (const entry of spread) lines.push(line(`${entry.minute} ${entry.hour} * * *`, entry.id, entry.zone));
  return `${lines.join("\n")}\n`;
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
};
const databaseNow = async (db: TestDatabase) => (await db.pool.query<{ now: Date }>("select clock_timestamp() as now")).rows[0]!.now.getTime();

const ours = await createTestDatabase();
const stock = await createTestDatabase({ migrate: false });
let node: Awaited<ReturnType<typeof startScheduler>> | undefined;
let runner: Runner | undefined;
try {
  const job = defineJob({
    name: "tenant_tick",
    description: "does nothing",
    payload: {},
    exclusive: false,
    async run() {
      return { itemsProcessed: 0, itemsFailed: 0, message: "ok" };
    },
  });
  // A defineJob job's function is not given its tick: the start is taken in the node's
  // job:start event, emitted right before the function runs.
  node = await startScheduler({ pool: ours.pool, jobs: [job], taskDirectory: null, crontab: crontabFor("new", "tenant_tick"), bootstrapJobs: [], logger: testLogger, platform: false, concurrency: 4 });
  node.events.on("job:start", (event: { jobName: string; scheduledFor: Date | string | null }) => {
    if (event.scheduledFor) observe("new", event.jobName, new Date(event.scheduledFor).toISOString());
  });
  runner = await run({
    connectionString: stock.connectionString,
    concurrency: 4,
    noHandleSignals: true,
    logger: new Logger(() => () => {}),
    crontab: crontabFor("baseline", "tenant_tick"),
    taskList: {
      tenant_tick: async (payload) => {
        const { _cron, entry } = payload as { _cron: { ts: string }; entry: string };
        observe("baseline", entry, _cron.ts);
      },
    },
  });

  const first = Math.ceil((await databaseNow(ours)) / MINUTE) * MINUTE + MINUTE;
  const last = first + (2 * TICKS - 1) * MINUTE;
  console.log(`# ${ENTRIES} entries per side (${PER_TICK} per measured tick), ${TICKS} ticks per side, from ${new Date(first).toISOString()} to ${new Date(last).toISOString()}`);
  while ((await databaseNow(ours)) < last + 15_000) await new Promise((resolve) => setTimeout(resolve, 1000));

  // Each side ran each of its ticks' jobs once: the 20 every-two-minutes entries, and the
  // spread entries whose minute came up (in their zone, on the new side).
  const report: Record<string, { p50: number; p99: number; max: number; n: number; first: number }> = {};
  for (const side of ["new", "baseline"] as const) {
    const ticks = Array.from({ length: 2 * TICKS }, (_, i) => first + i * MINUTE).filter((at) => new Date(at).getUTCMinutes() % 2 === (side === "new" ? 0 : 1));
    const delays: number[] = [];
    /** Per tick, its first run's delay: the cron, the queueing and a worker's pick-up, without waiting behind the tick's other runs. */
    const firsts: number[] = [];
    for (const tick of ticks) {
      const iso = new Date(tick).toISOString();
      const ofTick: number[] = [];
      for (let i = 0; i < PER_TICK; i += 1) {
        const runs = seen[side].get(`every_${i}@${iso}`) ?? [];
        if (runs.length !== 1) throw new Error(`${side}: every_${i} ran ${runs.length} times for its tick at ${iso}`);
        ofTick.push(runs[0]!);
      }
      delays.push(...ofTick);
      firsts.push(Math.min(...ofTick));
    }
    for (const [key, runs] of seen[side]) if (runs.length !== 1) throw new Error(`${side}: ${key} ran ${runs.length} times`);
    report[side] = { p50: quantile(delays, 0.5), p99: quantile(delays, 0.99), max: Math.max(...delays), n: delays.length, first: quantile(firsts, 0.5) };
  }
  const spreadRuns = (side: keyof typeof seen) => [...seen[side].keys()].filter((key) => key.startsWith("tenant_")).length;
  for (const [side, r] of Object.entries(report)) {
    console.log(`${side.padEnd(8)} start delay over ${r.n} runs of ${TICKS} ticks: p50 ${r.p50} ms, p99 ${r.p99} ms, max ${r.max} ms; a tick's first run: median ${r.first} ms (${spreadRuns(side as keyof typeof seen)} spread entries' runs besides)`);
  }
  console.log(`p99 new/baseline: ${(report.new!.p99 / report.baseline!.p99).toFixed(2)} (target: new p99 <= ${TARGET_P99_MS} ms: ${report.new!.p99 <= TARGET_P99_MS ? "met" : "NOT met"})`);
} finally {
  await node?.stop();
  await runner?.stop();
  await ours.drop();
  await stock.drop();
}
