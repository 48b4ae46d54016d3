import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import { startScheduler, type SchedulerHandle } from "../../../src/index.ts";
import { projectRoot } from "../../../src/engine/db/sql-file.ts";
import { launchChromium } from "../../helpers/browser.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";
import { eventually } from "../../helpers/wait.ts";

// The dashboard in a real browser (Debian's chromium): what it shows against the database,
// the actions through the page with the token, and their refusal without it.
// DASHBOARD_SCREENSHOT=1 also writes docs/dashboard.png.

// What the functions run inside the page use (the project's types have no DOM library).
declare const document: { body: { dataset: Record<string, string | undefined> }; documentElement: { scrollWidth: number } };
declare const window: { innerWidth: number };

const db = useTestDatabase();
const TOKEN = "dashboard-test-token-0123456789";
const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await db.pool.query(sql, params)).rows as T[];

let browser: Browser;
let withToken: SchedulerHandle;
let readOnly: SchedulerHandle;
const pageErrors: string[] = [];

async function seed(): Promise<void> {
  await q(`insert into services (name, module_name, host, command, port, desired_status, status, pid) values
    ('agent-a', 'agent', 'web-1', '/usr/bin/agent', 7001, 'enabled', 'running', 4242),
    ('mcp-files', 'mcp', 'web-1', '/usr/bin/mcp', 7002, 'enabled', 'crashed', null),
    ('api', 'api', 'web-2', '/usr/bin/api', 7003, 'disabled', 'stopped', null)`);
  await q(`insert into banned_ips (ip_address, reason, banned_at, expires_at, is_permanent, ban_source) values
    ('203.0.113.7', 'Automated: scanner activity detected', now() - interval '1 hour', now() + interval '13 days', false, 'malicious_ip_blacklist'),
    ('198.51.100.9', 'manual', now() - interval '2 days', null, true, 'manual'),
    ('192.0.2.44', 'old', now() - interval '20 days', now() - interval '6 days', false, 'behavioral_analysis')`);
  await q("select scheduler.pause_job('malicious_ip_blacklist', 'tuning the datacenter ranges', 'ops@example')");
  // 35 attempts of one schedule, of every status (each success after a failure its retry): the
  // sparkline shows the last 30, oldest first.
  await q(`insert into scheduler.job_runs (job_name, task, node_id, attempt, started_at, finished_at, duration_ms, status, error, message)
    select 'cleanup_empty_contexts', 'cleanup_empty_contexts', 'seeded', case when i % 5 = 2 then 2 else 1 end, now() - make_interval(hours => 40 - i), now() - make_interval(hours => 40 - i), 10 * i,
           (array['success', 'failed', 'success', 'skipped', 'abandoned'])[1 + i % 5], case when i % 5 = 1 then 'boom ' || i end, 'seeded ' || i
    from generate_series(1, 35) i`);
  // Two ticks no node ran, older than those 35 runs (not in its sparkline).
  await q(`insert into scheduler.job_runs (job_name, task, scheduled_for, started_at, finished_at, status, error)
    select 'cleanup_empty_contexts', 'cleanup_empty_contexts', t, t, t, 'missed', 'no scheduler node queued this tick'
    from (select date_trunc('hour', now()) - make_interval(hours => 50 + i) as t from generate_series(1, 2) i) ticks`);
}

async function openDashboard(page: Page, base: string): Promise<number> {
  const started = performance.now();
  await page.goto(`${base}/`);
  await page.waitForSelector("body[data-refreshes]");
  return performance.now() - started;
}

/**
 * Waits until `locator` shows `text`. The page refreshes itself every 10 s as well as after an
 * action, so "the next refresh" may be one that started before the action: wait for the state
 * the action must produce, never for a refresh count.
 */
const until = (locator: Locator, text: string | RegExp) => locator.filter({ hasText: text }).waitFor({ timeout: 10_000 });

/**
 * The run history as a fingerprint (ids and statuses). The nodes of this file run the real
 * crontab, so a tick (cleanup_inactive_sessions every 10 minutes, behavioral_analysis hourly,
 * ...) can add or finish a run at any moment: a page compared with the history is compared only
 * if the history did not change between the page's load and the comparison's queries.
 */
const historyFingerprint = async () => (await q<{ f: string }>("select count(*) || ':' || coalesce(sum(hashtext(id::text || status)), 0) as f from scheduler.job_runs"))[0]!.f;

const notice = (page: Page) => page.locator("#notice");
const queuedRuns = async () => (await q<{ n: number }>("select count(*)::int as n from graphile_worker.jobs where task_identifier = 'database_cleanup'"))[0]!.n;
const historyRuns = async () => (await q<{ n: number }>("select count(*)::int as n from scheduler.job_runs where job_name = 'database_cleanup'"))[0]!.n;

describe("dashboard in headless Chromium", () => {
  before(async () => {
    browser = await launchChromium();
    await seed();
    const common = { pool: db.pool, bootstrapJobs: [], logger: testLogger, services: false as const, http: "127.0.0.1:0", metricsCacheMs: 0 };
    withToken = await startScheduler({ ...common, httpToken: TOKEN, nodeId: "dash-token" });
    readOnly = await startScheduler({ ...common, nodeId: "dash-read-only" });
    // database_cleanup (daily at 03:00) was loaded two days ago and no tick of it has run since: late.
    await q("update scheduler.schedules set updated_at = now() - interval '2 days' where job_name = 'database_cleanup'");
    await withToken.runJob("database_cleanup", {}, { wait: true });
    await withToken.runJob("behavioral_analysis", { enforce: false }, { wait: true });
  });
  after(async () => {
    await browser?.close();
    await withToken?.stop();
    await readOnly?.stop();
  });

  it("shows schedules, runs, nodes, services and bans as the database has them, on a laptop and a phone", async (t) => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.on("console", (message) => message.type() === "error" && pageErrors.push(message.text()));
    page.on("pageerror", (error) => pageErrors.push(error.message));
    const base = `http://${withToken.httpAddress}`;
    let history = await historyFingerprint();
    const loadMs = await openDashboard(page, base);
    t.diagnostic(`dashboard load (navigation to fully rendered, 5 schedules, 2 pack panels): ${loadMs.toFixed(0)} ms`);
    if (process.env.DASHBOARD_SCREENSHOT) {
      const file = path.join(projectRoot, "docs", "dashboard.png");
      await page.screenshot({ path: file });
      t.diagnostic(`wrote ${file} (${Math.round(fs.statSync(file).size / 1024)} kB)`);
    }


    const schedules = await q<{ job_name: string; last_status: string | null; enabled: boolean }>("select job_name, last_status, enabled from scheduled_jobs order by job_name");
    assert.deepEqual(await page.locator("#schedules tbody tr[data-job]").evaluateAll((rows) => rows.map((row) => row.getAttribute("data-job"))), schedules.map((row) => row.job_name));
    const cleanupRow = page.locator('#schedules tr[data-job="database_cleanup"]');
    assert.match(await cleanupRow.locator('[data-field="last_run"]').innerText(), /^success/);
    assert.match(await cleanupRow.locator('[data-field="schedule"]').innerText(), /daily at 03:00/);
    const pausedRow = page.locator('#schedules tr[data-job="malicious_ip_blacklist"]');
    assert.match(await pausedRow.locator('[data-field="state"]').innerText(), /^paused/);
    assert.equal(await pausedRow.locator('[data-field="pause_reason"]').innerText(), "tuning the datacenter ranges");
    assert.equal(schedules.find((row) => row.job_name === "malicious_ip_blacklist")?.enabled, false);

    // Late and missed, as scheduled_jobs says.
    const flags = await q<{ job_name: string; late: boolean; missed_count: string }>("select job_name, late, missed_count from scheduled_jobs order by job_name");
    assert.deepEqual(flags.filter((row) => row.late).map((row) => row.job_name), ["database_cleanup"]);
    for (const row of flags) {
      const shown = page.locator(`#schedules tr[data-job="${row.job_name}"]`);
      assert.equal(await shown.locator('[data-field="late"]').count(), row.late ? 1 : 0, `${row.job_name}: late flag`);
      if (Number(row.missed_count) > 0) assert.match(await shown.locator('[data-field="missed"]').innerText(), new RegExp(`missed ${row.missed_count}`));
      else assert.equal(await shown.locator('[data-field="missed"]').count(), 0);
    }
    assert.equal(flags.find((row) => row.job_name === "cleanup_empty_contexts")?.missed_count, "2");

    // The page's sparkline and run list against the history, unchanged since the page loaded
    // (else a live tick raced the comparison: load the page again and compare again).
    for (let attempt = 1; ; attempt += 1) {
      const bars = await page.locator('#schedules tr[data-job="cleanup_empty_contexts"] svg.spark rect').evaluateAll((rects) => rects.map((rect) => rect.getAttribute("data-status")));
      const shownRuns = await page.locator("#runs tbody tr[data-run]").evaluateAll((rows) => rows.map((row) => row.getAttribute("data-run")));
      const spark = await q<{ status: string }>("select status from (select status, started_at, id from scheduler.job_runs where job_name = 'cleanup_empty_contexts' order by started_at desc, id desc limit 30) r order by started_at, id");
      const runs = await q<{ id: string }>("select id from scheduler.job_runs order by started_at desc, id desc limit 50");
      const now = await historyFingerprint();
      // Runs and attempts apart; a last run that was a dry run labelled, with the last success that did the work.
      const counts = await q<{ job_name: string; run_count: number; attempt_count: number; failure_count: number; last_run_dry_run: boolean | null }>(
        "select job_name, run_count, attempt_count, failure_count, last_run_dry_run from scheduled_jobs order by job_name");
      const shownCounts = await page.locator('#schedules tr[data-job] [data-field="counts"]').allInnerTexts();
      const shownDry = await page.locator("#schedules tr[data-job]").evaluateAll((rows) => rows.filter((row) => row.querySelector('[data-field="last_success"]')).map((row) => row.getAttribute("data-job")));
      if (await historyFingerprint() === history) {
        counts.forEach((row, i) => assert.match(shownCounts[i]!, new RegExp(`^${row.run_count} runs? · ${row.attempt_count} attempts? \\(${row.failure_count} failed\\)`), row.job_name));
        assert.deepEqual(shownDry, counts.filter((row) => row.last_run_dry_run).map((row) => row.job_name), "dry runs labelled as scheduled_jobs says");
        assert.ok(counts.some((row) => Number(row.attempt_count) > Number(row.run_count)), "the seeded retries are attempts, not runs");
      }
      if (now === history) {
        assert.deepEqual(bars, spark.map((row) => row.status), "the last 30 runs, oldest first, by status");
        assert.ok(bars.includes("skipped") && bars.includes("abandoned") && bars.includes("failed"));
        assert.deepEqual(shownRuns, runs.map((row) => row.id));
        break;
      }
      assert.ok(attempt < 5, "the run history kept changing while the page was compared with it");
      t.diagnostic(`the run history changed during the comparison (a tick of the crontab the nodes run): comparing a freshly loaded page`);
      history = now;
      await openDashboard(page, base);
    }

    const nodes = await q<{ node_id: string }>("select node_id from scheduler.nodes where stopped_at is null order by node_id");
    assert.deepEqual((await page.locator("#nodes tbody tr[data-node]").evaluateAll((rows) => rows.map((row) => row.getAttribute("data-node")))).sort(), nodes.map((row) => row.node_id));
    assert.equal(await page.locator('#nodes tr[data-node="dash-token"] [data-field="state"]').innerText(), "alive");

    const hosts = await q<{ host: string; n: number }>("select host, count(*)::int as n from services group by host order by host");
    for (const { host, n } of hosts) assert.equal(await page.locator(`#panel-services tbody[data-group="${host}"] tr:not(.group)`).count(), n, `services of ${host}`);
    assert.equal(await page.locator('#panel-services tbody[data-group="web-1"] [data-field="status"]').allInnerTexts().then((texts) => texts.sort().join()), "crashed,running");
    // The Audit panel: the latest 20 rows of the trail, newest first (the seeded pause, the runs asked for above).
    const audit = await q<{ id: string; action: string }>("select id, action from scheduler.audit order by at desc, id desc limit 20");
    assert.deepEqual(await page.locator("#audit tbody tr[data-audit]").evaluateAll((rows) => rows.map((row) => row.getAttribute("data-audit"))), audit.map((row) => String(row.id)));
    assert.ok(audit.some((row) => row.action === "pause") && audit.some((row) => row.action === "run"));
    assert.equal(await page.locator('#audit tr[data-audit] [data-field="actor"]').filter({ hasText: "ops@example" }).count(), 1, "who paused, as the pause said");
    const active = (await q<{ n: number }>("select count(*)::int as n from banned_ips where is_permanent or expires_at is null or expires_at > now()"))[0]!.n;
    assert.equal(await page.locator('#panel-bans .chip[data-label="active"] strong').innerText(), String(active));
    assert.equal(await page.locator("#panel-bans tbody tr:not(.empty)").count(), active);

    // A run's detail: payload, node and message as recorded.
    const [detail] = await q<{ id: string; payload: unknown; node_id: string; message: string }>("select id, payload, node_id, message from scheduler.job_runs where job_name = 'behavioral_analysis' and dry_run order by id desc limit 1");
    await page.locator(`#runs tr[data-run="${detail!.id}"]`).click();
    await page.locator("#run-detail[open]").waitFor();
    assert.deepEqual(JSON.parse(await page.locator("#run-payload").innerText()), detail!.payload);
    assert.match(await page.locator('#run-fields [data-field="node"]').innerText(), new RegExp(`^${detail!.node_id}`));
    assert.equal(await page.locator('#run-fields [data-field="message"]').innerText(), detail!.message);
    assert.match(await page.locator('#run-fields [data-field="status"]').innerText(), /dry run/);
    await page.locator("#run-close").click();

    await page.setViewportSize({ width: 390, height: 844 });
    const widths = await page.evaluate(() => ({ page: document.documentElement.scrollWidth, viewport: window.innerWidth }));
    assert.ok(widths.page <= widths.viewport, `no horizontal scrolling on a phone: page ${widths.page} px, viewport ${widths.viewport} px`);
    assert.ok(await page.locator('#schedules tr[data-job="database_cleanup"] [data-action="run"]').isVisible(), "actions reachable on a phone");
    assert.deepEqual(pageErrors, [], "no script errors or Content-Security-Policy violations");
    await context.close();
  });

  it("runs now and pauses through the page with the token, and refuses both without it or with a wrong one", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const base = `http://${withToken.httpAddress}`;
    await openDashboard(page, base);
    assert.match(await page.locator("#mode").innerText(), /Actions need the token/);
    const row = page.locator('#schedules tr[data-job="database_cleanup"]');

    // No token presented: 401, shown on the page, nothing queued.
    const [queuedBefore, historyBefore] = [await queuedRuns(), await historyRuns()];
    await row.locator('[data-action="run"]').click();
    await assert.doesNotReject(() => notice(page).filter({ hasText: "refused (401): no token presented" }).waitFor());
    // A wrong token: the pause is refused too.
    await page.fill("#token", "not-the-token-of-this-node");
    await page.click("#token-use");
    await row.locator('[data-action="pause"]').click();
    await page.fill("#pause-reason", "should not stick");
    await page.click("#pause-confirm");
    await notice(page).filter({ hasText: "refused (401): wrong token" }).waitFor();
    assert.equal(await queuedRuns(), queuedBefore, "nothing queued without the right token");
    assert.equal(await historyRuns(), historyBefore);
    assert.deepEqual(await q("select * from scheduler.paused_jobs where job_name = 'database_cleanup'"), [], "nothing paused without the right token");

    // The token: run now, then find the history row of that job.
    await page.click("#token-forget");
    await page.fill("#token", TOKEN);
    await page.click("#token-use");
    await until(page.locator("#mode"), /Actions on/);
    assert.deepEqual(await context.cookies(), [], "the token is never a cookie");
    await row.locator('[data-action="run"]').click();
    const queued = await notice(page).filter({ hasText: /^queued database_cleanup as job \d+$/ }).innerText();
    const jobId = /job (\d+)$/.exec(queued)![1]!;
    const [run] = await eventually(async () => {
      const rows = await q<{ status: string; node_id: string; dry_run: boolean }>("select status, node_id, dry_run from scheduler.job_runs where job_id = $1 and status <> 'running'", [jobId]);
      return rows.length > 0 ? rows : null;
    }, { timeoutMs: 30_000, what: "the run queued from the page to finish" });
    assert.equal(run!.status, "success");
    assert.equal(run!.dry_run, false);

    // Pause with a reason, through the page: scheduled_jobs shows it, and so does the page.
    await row.locator('[data-action="pause"]').click();
    await page.fill("#pause-reason", "maintenance window");
    await page.click("#pause-confirm");
    await until(notice(page), /^paused database_cleanup$/);
    await until(row.locator('[data-field="pause_reason"]'), "maintenance window");
    // The Audit panel shows the pause first, with who made it from where.
    const latest = page.locator("#audit tbody tr[data-audit]").first();
    await until(latest.locator('[data-field="action"]'), /^pause$/);
    assert.equal(await latest.locator('[data-field="target"]').innerText(), "database_cleanup");
    assert.match(await latest.locator('[data-field="actor"]').innerText(), /^dashboard on dash-token \((::ffff:)?127\.0\.0\.1\)$/);
    assert.match(await latest.locator('[data-field="detail"]').innerText(), /^reason=maintenance window$/);
    const [paused] = await q<{ enabled: boolean; pause_reason: string; paused_by: string }>("select enabled, pause_reason, paused_by from scheduled_jobs where job_name = 'database_cleanup'");
    assert.equal(paused!.enabled, false);
    assert.equal(paused!.pause_reason, "maintenance window");
    assert.match(paused!.paused_by, /^dashboard on dash-token \(/);
    assert.equal(await row.locator('[data-field="pause_reason"]').innerText(), "maintenance window");
    // A paused job's run is refused, as the CLI refuses it.
    await row.locator('[data-action="run"]').click();
    await notice(page).filter({ hasText: "refused (409): job 'database_cleanup' is paused" }).waitFor();
    await row.locator('[data-action="resume"]').click();
    await until(notice(page), /^resumed database_cleanup$/);
    assert.deepEqual(await q("select * from scheduler.paused_jobs where job_name = 'database_cleanup'"), []);
    await context.close();
  });

  it("says it is read-only on a node without SCHEDULER_HTTP_TOKEN, and its actions answer 403", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await openDashboard(page, `http://${readOnly.httpAddress}`);
    assert.match(await page.locator("#mode").innerText(), /Read-only\. Actions are off on this node: set SCHEDULER_HTTP_TOKEN/);
    assert.equal(await page.locator("[data-action]").count(), 0, "no action buttons");
    assert.equal(await page.locator("#token-form").isVisible(), false);
    const queuedBefore = await queuedRuns();
    const answers = await page.evaluate(async (token) => {
      const post = async (name: string, body: unknown) => {
        const response = await fetch(`/api/actions/${name}`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
        return { status: response.status, body: (await response.json()) as { error: string } };
      };
      return [await post("run", { job: "database_cleanup" }), await post("pause", { job: "database_cleanup", reason: "x" })];
    }, TOKEN);
    for (const answer of answers) {
      assert.equal(answer.status, 403);
      assert.match(answer.body.error, /actions are off: this node has no SCHEDULER_HTTP_TOKEN/);
    }
    assert.equal(await queuedRuns(), queuedBefore);
    assert.deepEqual(await q("select * from scheduler.paused_jobs where job_name = 'database_cleanup'"), []);
    await context.close();
  });
});
