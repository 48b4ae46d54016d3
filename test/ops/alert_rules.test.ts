import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { defineJob, startScheduler, type JobResult } from "../../src/index.ts";
import { projectRoot } from "../../src/engine/db/sql-file.ts";
import { testLogger, useTestDatabase } from "../helpers/db.ts";
import { parsePrometheus } from "../helpers/prometheus.ts";

// The shipped alert rules (ops/prometheus): promtool accepts them and their unit tests pass,
// and every metric and label value they select is one a real node exports. A renamed metric
// would otherwise leave an alert that can never fire, silently.

const db = useTestDatabase();
const dir = path.join(projectRoot, "ops/prometheus");
const RULES = path.join(dir, "scheduler-alerts.yml");

function promtool(...args: string[]): string {
  const result = spawnSync("promtool", args, { cwd: projectRoot, encoding: "utf8" });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    assert.fail("promtool is not installed: install Debian's `prometheus` package (apt-get install prometheus), which provides /usr/bin/promtool; .ci/run does");
  }
  assert.equal(result.status, 0, `promtool ${args.join(" ")} failed:\n${result.stdout}${result.stderr}`);
  return result.stdout + result.stderr;
}

/** The `record:` names and `expr:` texts of a rule file (single-line or `|` block exprs). */
function readRules(text: string): { records: Map<string, string>; exprs: string[] } {
  const lines = text.split("\n");
  const records = new Map<string, string>();
  const exprs: string[] = [];
  let record: string | null = null;
  for (let i = 0; i < lines.length; i++) {
    const named = /^\s*- record:\s*(\S+)/.exec(lines[i]!);
    if (named) record = named[1]!;
    if (/^\s*- alert:/.test(lines[i]!)) record = null;
    const expr = /^(\s*)expr:\s*(.*)$/.exec(lines[i]!);
    if (!expr) continue;
    let body = expr[2]!;
    if (body === "|" || body === ">") {
      const block: string[] = [];
      while (i + 1 < lines.length && (lines[i + 1]!.trim() === "" || lines[i + 1]!.search(/\S/) > expr[1]!.length)) block.push(lines[++i]!);
      body = block.join("\n");
    }
    exprs.push(body);
    if (record) records.set(record, body);
  }
  return { records, exprs };
}

/** Metric names in a PromQL expression: identifiers outside strings, not functions or keywords. */
function namesIn(expr: string): string[] {
  const bare = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\[[^\]]*\]/g, "");
  // Functions (max_over_time) and label names (status) are neither scheduler_* nor recorded (a:b:c).
  return [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]).filter((name) => name.startsWith("scheduler_") || name.includes(":"));
}

/** The raw exported metrics behind a name (a recorded name resolves through its expr). */
function rawMetrics(name: string, records: Map<string, string>): string[] {
  const expr = records.get(name);
  if (expr === undefined) return [name];
  return namesIn(expr).flatMap((inner) => rawMetrics(inner, records));
}

const ok = defineJob({ name: "alerts_ok", description: "Succeeds", payload: {}, run: async (): Promise<JobResult> => ({ itemsProcessed: 1, itemsFailed: 0, message: "fine" }) });
const broken = defineJob({
  name: "alerts_broken",
  description: "Fails",
  payload: {},
  run: async (): Promise<JobResult> => {
    throw new Error("on purpose");
  },
});

describe("alert rules in ops/prometheus", () => {
  it("pass `promtool check rules`, `promtool check config` and their `promtool test rules` unit tests", () => {
    assert.match(promtool("check", "rules", RULES), /SUCCESS: \d+ rules found/);
    promtool("check", "config", path.join(dir, "prometheus.example.yml"));
    assert.match(promtool("test", "rules", path.join(dir, "scheduler-alerts.test.yml")), /SUCCESS/);
  });

  it("the Grafana dashboard's queries parse and read only recorded series the rules define", () => {
    const dashboard = JSON.parse(fs.readFileSync(path.join(projectRoot, "ops/grafana/scheduler-dashboard.json"), "utf8")) as { panels: { title: string; targets: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((panel) => panel.targets.map((target) => ({ title: panel.title, expr: target.expr })));
    assert.ok(exprs.length > 0, "the dashboard has no queries");
    const { records } = readRules(fs.readFileSync(RULES, "utf8"));
    for (const { title, expr } of exprs) {
      for (const name of namesIn(expr)) assert.ok(records.has(name), `panel "${title}" reads ${name}, which ${RULES} does not record`);
    }
    // promtool parses PromQL only inside rule files: check the queries as recording rules.
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dashboard-rules-"));
    try {
      const rules = exprs.map(({ expr }, i) => `      - record: dashboard:query${i}\n        expr: ${JSON.stringify(expr)}`).join("\n");
      fs.writeFileSync(path.join(tmp, "queries.yml"), `groups:\n  - name: dashboard\n    rules:\n${rules}\n`);
      promtool("check", "rules", path.join(tmp, "queries.yml"));
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("select only metrics and label values a real node exports", async () => {
    const { records, exprs } = readRules(fs.readFileSync(RULES, "utf8"));
    assert.ok(records.size >= 5 && exprs.length >= records.size + 5, `the rule file parsed into ${records.size} records and ${exprs.length} exprs: has its layout changed?`);

    const scheduler = await startScheduler({
      pool: db.pool,
      jobs: [ok, broken],
      taskDirectory: null,
      crontab: "0 4 * * * alerts_ok\n0 5 * * * alerts_broken ?max=1 {}\n",
      bootstrapJobs: [],
      logger: testLogger,
      http: "127.0.0.1:0",
      metricsCacheMs: 0,
    });
    let text: string;
    try {
      const base = `http://${scheduler.httpAddress}`;
      // Before any run: each schedule's success and failed counters exist at 0, so that
      // Prometheus's increase() counts the first failures (node-metrics.ts).
      const before = parsePrometheus(await (await fetch(`${base}/metrics`)).text());
      for (const status of ["success", "failed"]) {
        assert.equal(before.find((s) => s.name === "scheduler_job_runs_total" && s.labels.schedule === "alerts_broken" && s.labels.status === status)?.value, 0, status);
      }
      await scheduler.runJob("alerts_ok", {}, { wait: true });
      assert.equal((await scheduler.runJob("alerts_broken", {}, { wait: true })).run?.status, "failed");
      text = await (await fetch(`${base}/metrics`)).text();
    } finally {
      await scheduler.stop();
    }

    const samples = parsePrometheus(text);
    const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const exported = (name: string) => {
      if (types.has(name)) return true;
      const base = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
      return base !== undefined && ["histogram", "summary"].includes(types.get(base) ?? "");
    };

    // No series of ours carries a label Prometheus sets on every target itself.
    const clashing = samples.filter((s) => s.name.startsWith("scheduler_") && ("job" in s.labels || "instance" in s.labels)).map((s) => s.name);
    assert.deepEqual([...new Set(clashing)], [], "metrics with a job or instance label");

    const used = new Set(exprs.flatMap(namesIn));
    for (const name of used) {
      if (name.includes(":")) assert.ok(records.has(name), `${name} is used in ${RULES} but no rule records it`);
    }
    const raw = new Set([...used].flatMap((name) => rawMetrics(name, records)));
    assert.ok(raw.size >= 8, `found only ${[...raw].join(", ")}: has the expression parser stopped matching?`);
    const missing = [...raw].filter((name) => !exported(name));
    assert.deepEqual(missing, [], `the rules use metrics no node exports (renamed? see docs/observability.md): ${missing.join(", ")}`);

    // Label values in selectors (`status="failed"`, `state="dead"`) must be values the metric
    // takes: seen in a sample, or (no sample here, e.g. services) named in its HELP text.
    for (const expr of exprs) {
      for (const selector of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)) {
        if (!selector[1]!.startsWith("scheduler_") && !selector[1]!.includes(":")) continue;
        for (const matcher of selector[2]!.matchAll(/(\w+)\s*(=~|=)\s*"([^"]*)"/g)) {
          const [, label, , pattern] = matcher;
          if (label === "schedule") continue; // a schedule's name
          for (const metric of rawMetrics(selector[1]!, records)) {
            const help = new RegExp(`^# HELP ${metric} (.*)$`, "m").exec(text)?.[1] ?? "";
            const seen = new Set(samples.filter((s) => s.name === metric).map((s) => s.labels[label!]).filter((v) => v !== undefined));
            for (const value of pattern!.split("|")) {
              assert.ok(seen.has(value) || help.includes(value), `${selector[0]} selects ${label}="${value}", which ${metric} never has (seen: ${[...seen].join(", ") || "none"})`);
            }
          }
        }
      }
    }
  });
});
