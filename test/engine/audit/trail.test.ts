import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, describe, it } from "node:test";
import { defineJob, startScheduler, z, type JobResult, type SchedulerHandle } from "../../../src/index.ts";
import { listAudit, pruneAudit, type AuditRow } from "../../../src/engine/audit/trail.ts";
import { projectRoot } from "../../../src/engine/db/sql-file.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

// The audit trail from the library and the dashboard: each change by hand writes exactly one
// row, under the actor who asked, with the database role; /api/audit reads it; rows older than
// the history's retention are pruned, by the nodes too. The CLI's rows, and who may write
// the trail, are in test/platform/audit.test.ts.

const db = useTestDatabase();
const TOKEN = "audit-test-token-0123456789";
const ok = defineJob({
  name: "audit_ok",
  description: "Succeeds",
  payload: { n: z.number().int().default(1), enforce: z.boolean().default(true) },
  run: async (): Promise<JobResult> => ({ itemsProcessed: 1, itemsFailed: 0, message: "fine" }),
});
let node: SchedulerHandle;
let base: string;

const rows = async () => (await db.pool.query<AuditRow & { id: string }>("select * from scheduler.audit order by id")).rows;
/** The rows `work` added (and checks it added exactly `count`). */
async function added(count: number, work: () => Promise<unknown>): Promise<AuditRow[]> {
  const before = (await rows()).map((row) => row.id);
  await work();
  const now = (await rows()).filter((row) => !before.includes(row.id));
  assert.equal(now.length, count, `rows written: ${JSON.stringify(now)}`);
  return now;
}
function post(name: string, body: unknown, token = TOKEN) {
  return fetch(`${base}/api/actions/${name}`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: JSON.stringify(body) }).then(async (response) => ({
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
  }));
}

describe("the audit trail: library, dashboard, API, pruning", () => {
  before(async () => {
    node = await startScheduler({
      pool: db.pool, platform: false, jobs: [ok], taskDirectory: null, crontab: "0 4 * * * audit_ok ?id=audit_entry {n: 5}\n",
      bootstrapJobs: [], logger: testLogger, http: "127.0.0.1:0", httpToken: TOKEN, actor: "billing-app",
    });
    base = `http://${node.httpAddress}`;
  });
  after(() => node?.stop());

  it("runJob writes one 'run' row under the actor option, or the one given to the call; a refused run writes none", async () => {
    let jobId = "";
    const [task] = await added(1, async () => ({ jobId } = await node.runJob("audit_ok")));
    assert.deepEqual(
      [task!.actor, task!.action, task!.target, task!.db_role, task!.detail],
      ["billing-app", "run", "audit_ok", "postgres", { job_id: Number(jobId), task: "audit_ok", payload: {}, dry_run: false }],
    );
    const [entry] = await added(1, () => node.runJob("audit_entry", { n: 2 }, { actor: "alice (billing-app)" }));
    assert.deepEqual([entry!.actor, entry!.target, entry!.detail.task, entry!.detail.payload], ["alice (billing-app)", "audit_entry", "audit_ok", { n: 2 }]);
    const [dry] = await added(1, () => node.runJob("audit_ok", { enforce: false }));
    assert.equal(dry!.detail.dry_run, true);
    await added(0, () => assert.rejects(node.runJob("audit_ok", { n: "many" }), /n/));
    await added(0, () => assert.rejects(node.runJob("no_such_job"), /no job or crontab entry named 'no_such_job'/));
  });

  it("the library's default actor is the application's package name, else 'library'", async () => {
    const app = fs.mkdtempSync(path.join(os.tmpdir(), "sps-audit-app-"));
    try {
      fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "acme-billing" }));
      fs.mkdirSync(path.join(app, "bin"));
      const actorModule = pathToFileURL(path.join(projectRoot, "src/engine/audit/actor.ts")).href;
      fs.writeFileSync(path.join(app, "bin", "main.mjs"), `import { applicationActor } from ${JSON.stringify(actorModule)};\nconsole.log(applicationActor());\n`);
      const actorOf = (script: string, cwd: string) =>
        new Promise<string>((resolve, reject) => {
          const env = { ...process.env };
          delete env.npm_package_name;
          const child = spawn(process.execPath, [script], { cwd, env, stdio: ["ignore", "pipe", "inherit"] });
          let out = "";
          child.stdout.on("data", (chunk) => (out += chunk));
          child.on("error", reject);
          child.on("close", () => resolve(out.trim()));
        });
      // Found above the main script, wherever it is started from.
      assert.equal(await actorOf(path.join(app, "bin", "main.mjs"), os.tmpdir()), "acme-billing");
      // No package.json above the script nor the working folder.
      fs.rmSync(path.join(app, "package.json"));
      if (!fs.existsSync(path.join(os.tmpdir(), "package.json")) && !fs.existsSync("/package.json")) {
        assert.equal(await actorOf(path.join(app, "bin", "main.mjs"), "/"), "library");
      }
    } finally {
      fs.rmSync(app, { recursive: true, force: true });
    }
  });

  it("each dashboard action over HTTP with the token writes one row under 'dashboard on NODE (ADDRESS)'; a refused or idle one writes none", async () => {
    const dashboard = new RegExp(`^dashboard on ${node.nodeId} \\((::ffff:)?127\\.0\\.0\\.1\\)$`);
    const [run] = await added(1, async () => assert.equal((await post("run", { job: "audit_entry" })).status, 200));
    assert.match(run!.actor, dashboard);
    assert.deepEqual([run!.action, run!.target, run!.detail.dry_run, run!.db_role], ["run", "audit_entry", false, "postgres"]);
    const [dry] = await added(1, async () => assert.equal((await post("dry-run", { job: "audit_ok" })).status, 200));
    assert.deepEqual([dry!.action, dry!.target, dry!.detail.dry_run, dry!.detail.payload], ["run", "audit_ok", true, { enforce: false }]);
    const [paused] = await added(1, async () => assert.equal((await post("pause", { job: "audit_ok", reason: "disk full" })).status, 200));
    assert.match(paused!.actor, dashboard);
    assert.deepEqual([paused!.action, paused!.target, paused!.detail], ["pause", "audit_ok", { reason: "disk full" }]);
    await added(0, async () => assert.equal((await post("pause", { job: "audit_ok" })).body.paused, false, "paused already: nothing changed"));
    await added(0, async () => assert.equal((await post("resume", { job: "audit_ok" }, "not-the-token-of-this-node")).status, 401));
    await added(0, async () => assert.equal((await post("run", { job: "audit_entry" })).status, 409, "paused through its task"));
    const [resumed] = await added(1, async () => assert.equal((await post("resume", { job: "audit_ok" })).status, 200));
    assert.match(resumed!.actor, dashboard);
    assert.deepEqual([resumed!.action, resumed!.target], ["resume", "audit_ok"]);
    await added(0, async () => assert.equal((await post("resume", { job: "audit_ok" })).body.resumed, false));
  });

  it("GET /api/audit gives the latest rows, newest first, of one target when asked; its limit is bounded", async () => {
    const get = async (query: string) => {
      const response = await fetch(`${base}/api/audit${query}`);
      return { status: response.status, body: (await response.json()) as { id: string; action: string; target: string }[] & { error?: string } };
    };
    const newest = await listAudit(db.pool, { limit: 3 });
    const three = await get("?limit=3");
    assert.equal(three.status, 200);
    assert.deepEqual(three.body.map((row) => [String(row.id), row.action, row.target]), newest.map((row) => [String(row.id), row.action, row.target]));
    assert.ok(Number(three.body[0]!.id) > Number(three.body[2]!.id), "newest first");
    const all = (await get("")).body;
    assert.equal(all.length, Math.min(20, (await rows()).length), "20 by default");
    const entry = (await get("?target=audit_entry&limit=50")).body;
    assert.deepEqual(entry.map((row) => row.target), entry.map(() => "audit_entry"));
    assert.ok(entry.length >= 2);
    for (const bad of ["0", "201", "ten", "2.5"]) {
      const answer = await get(`?limit=${bad}`);
      assert.equal(answer.status, 400, bad);
      assert.match(String(answer.body.error), /limit must be a whole number from 1 to 200/);
    }
  });

  it("rows older than the retention are pruned in batches, never one younger than a day; a node prunes at start", async () => {
    const record = (target: string) => db.pool.query("select scheduler.audit_record('tester', 'pause', $1)", [target]);
    for (const target of ["old-1", "old-2", "old-3", "recent", "hours-old"]) await record(target);
    await db.pool.query("update scheduler.audit set at = now() - interval '40 days' where target like 'old-%'");
    await db.pool.query("update scheduler.audit set at = now() - interval '3 hours' where target = 'hours-old'");
    const count = async (like: string) => (await db.pool.query<{ n: number }>("select count(*)::int as n from scheduler.audit where target like $1", [like])).rows[0]!.n;
    assert.equal(await pruneAudit(db.pool, 30, 2), 3, "two batches");
    assert.deepEqual([await count("old-%"), await count("recent"), await count("hours-old")], [0, 1, 1]);
    assert.equal(await pruneAudit(db.pool, 0), 0, "a retention under a day keeps the last day");
    assert.equal(await count("hours-old"), 1);

    await db.pool.query("update scheduler.audit set at = now() - interval '12 days' where target = 'recent'");
    const pruner = await startScheduler({ pool: db.pool, platform: false, jobs: [ok], taskDirectory: null, crontab: "", bootstrapJobs: [], logger: testLogger, http: false, historyRetentionDays: 10 });
    try {
      await eventually(async () => (await count("recent")) === 0, { what: "the node to prune the audit row older than its retention" });
      assert.equal(await count("hours-old"), 1);
    } finally {
      await pruner.stop();
    }
  });
});
