import { act, askPause, notify, showAccess } from "./access.js";
import { badge, cell, duration, el, fill, sparkline, when } from "./view.js";

// The dashboard: everything comes from this node's JSON API (/api/...), drawn with the DOM
// and refreshed every 10 s. Panels that packs add (/api/dashboard lists them) are drawn from
// their description alone.

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 10_000;
let info = null;
// Refreshes overlap (the 10 s timer, an action, a filter change): only the one started last
// may draw, so an older answer never overwrites a newer one.
let latestRefresh = 0;

async function get(path) {
  const response = await fetch(path, { cache: "no-store", credentials: "omit" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function stateOf(row) {
  const flags = [];
  if (row.enabled === false) {
    const through = row.paused_as && row.paused_as !== row.job_name ? ` (task ${row.paused_as})` : "";
    flags.push(badge(`paused${through}`, "paused"));
    if (row.pause_reason) flags.push(el("span", { class: "reason", "data-field": "pause_reason", text: row.pause_reason }));
    if (row.paused_by) flags.push(el("span", { class: "muted small", text: ` by ${row.paused_by}` }));
  } else flags.push(badge("enabled"));
  // Late: a tick has waited longer than its grace with no run started (scheduled_jobs.late_since).
  if (row.late === true) flags.push(el("span", { "data-field": "late" }, badge("late"), " ", when(row.late_since)));
  if (Number(row.missed_count) > 0) flags.push(el("span", { "data-field": "missed" }, badge(`missed ${row.missed_count}`, "missed")));
  return flags;
}

function actionsFor(row) {
  if (!info?.actions) return [];
  const job = row.job_name;
  const buttons = [el("button", { type: "button", "data-action": "run", onclick: async () => (await act("run", { job })) && reload() }, "Run now")];
  if (row.dry_run_available) buttons.push(el("button", { type: "button", "data-action": "dry-run", class: "quiet", onclick: async () => (await act("dry-run", { job })) && reload() }, "Dry run"));
  if (row.enabled === false) buttons.push(el("button", { type: "button", "data-action": "resume", onclick: async () => (await act("resume", { job })) && reload() }, "Resume"));
  else buttons.push(el("button", { type: "button", "data-action": "pause", class: "danger", onclick: () => askPause(job, reload) }, "Pause…"));
  return el("div", { class: "buttons" }, buttons);
}

const plural = (n, word) => `${n} ${word}${Number(n) === 1 ? "" : "s"}`;

/** Runs (ticks and manual runs) and their attempts apart: a run retried twice is one run, three attempts. */
function countsOf(row) {
  const notRun = [Number(row.skipped_count) > 0 ? `${row.skipped_count} skipped` : null, Number(row.missed_count) > 0 ? `${row.missed_count} missed` : null].filter(Boolean);
  const text = `${plural(row.run_count ?? 0, "run")} · ${plural(row.attempt_count ?? 0, "attempt")} (${row.failure_count ?? 0} failed)${notRun.length > 0 ? ` · ${notRun.join(", ")}` : ""}`;
  return el("div", { class: "muted small", "data-field": "counts", text });
}

function scheduleRow(row) {
  // A dry run changed nothing: labelled, and the last success that did the entry's work beside it.
  const dry = row.last_run_dry_run
    ? [" ", badge("dry run", "dry"), el("div", { class: "muted small", "data-field": "last_success" }, "last real success: ", row.last_success ? when(row.last_success) : "never")]
    : [];
  const last = row.last_run
    ? [badge(row.last_status ?? "?"), " ", when(row.last_run), el("span", { class: "muted", text: ` ${duration(row.last_duration_ms)}` }), ...dry]
    : [el("span", { class: "muted", text: "never" })];
  return el(
    "tr",
    { "data-job": row.job_name, class: row.enabled === false ? "paused" : null },
    cell("job", "job_name", el("strong", { text: row.job_name }), row.task !== row.job_name ? el("div", { class: "muted small", text: `task ${row.task}` }) : null, row.description ? el("div", { class: "muted small", text: row.description }) : null),
    cell("schedule", "schedule", el("div", { text: row.schedule_words ?? row.schedule }), el("code", { class: "small", text: row.schedule }), el("span", { class: "muted small", "data-field": "timezone", text: ` ${row.timezone ?? "UTC"}` })),
    cell("state", "state", stateOf(row)),
    cell("last run", "last_run", last, row.last_error ? el("div", { class: "error small", title: row.last_error, text: row.last_error.slice(0, 120) }) : null, countsOf(row)),
    cell("next run", "next_run", row.enabled === false ? el("span", { class: "muted", text: "– (paused)" }) : when(row.next_run)),
    cell("last 30 runs", "recent_runs", sparkline(row.recent_runs ?? [], showRun)),
    cell("", "actions", actionsFor(row)),
  );
}

const clip = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

function runRow(run) {
  return el(
    "tr",
    { "data-run": run.id, class: "clickable", tabindex: 0, onclick: () => showRun(run.id), onkeydown: (event) => event.key === "Enter" && showRun(run.id) },
    cell("#", "id", String(run.id)),
    cell("job", "job_name", run.job_name),
    cell("status", "status", badge(run.status), run.dry_run ? badge("dry run", "dry") : null),
    cell("started", "started_at", when(run.started_at)),
    cell("duration", "duration_ms", duration(run.duration_ms)),
    cell("node", "node_id", el("span", { class: "small", text: run.node_id ?? "–" })),
    cell("result", "message", el("span", { class: run.error ? "error small" : "small", text: clip(run.error ?? run.message ?? "", 160) })),
  );
}

function nodeRow(node) {
  return el(
    "tr",
    { "data-node": node.node_id },
    cell("node", "node_id", el("span", { class: "small", text: node.node_id })),
    cell("host", "host", node.host),
    cell("state", "state", badge(node.state === "alive" ? "alive" : node.state, node.state)),
    cell("last heartbeat", "last_heartbeat_at", when(node.last_heartbeat_at)),
    cell("running jobs", "running_jobs", String(node.running_jobs)),
    cell("started", "started_at", when(node.started_at)),
    cell("version", "version", node.version ?? "–"),
  );
}

/** A row of the audit trail: who changed what by hand, with the database role it used. */
function auditRow(row) {
  const detail = Object.entries(row.detail ?? {})
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join(" ");
  return el(
    "tr",
    { "data-audit": row.id },
    cell("when", "at", when(row.at)),
    cell("action", "action", el("strong", { text: row.action })),
    cell("target", "target", row.target ?? "–"),
    cell("by", "actor", el("span", { class: "small", text: row.actor })),
    cell("role", "db_role", el("span", { class: "small", text: row.db_role })),
    cell("detail", "detail", el("span", { class: "small", title: detail, text: clip(detail, 160) })),
  );
}

function valueCell(column, value) {
  if (value === null || value === undefined || value === "") return cell(column.label, column.key, el("span", { class: "muted", text: "–" }));
  if (column.kind === "time") return cell(column.label, column.key, when(value));
  if (column.kind === "status") return cell(column.label, column.key, badge(String(value)));
  return cell(column.label, column.key, String(value));
}

function packPanel(panel, data) {
  const head = el("tr", {}, panel.columns.map((column) => el("th", { text: column.label })));
  const groups = new Map();
  for (const row of data.rows) {
    const key = panel.groupBy ? String(row[panel.groupBy]) : "";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(row);
  }
  const bodies = [...groups].map(([key, rows]) =>
    el("tbody", { "data-group": key || null }, panel.groupBy ? el("tr", { class: "group" }, el("th", { colspan: panel.columns.length, text: `${panel.groupBy} ${key}` })) : null, rows.map((row) => el("tr", {}, panel.columns.map((column) => valueCell(column, row[column.key]))))),
  );
  if (bodies.length === 0) bodies.push(el("tbody", {}, el("tr", { class: "empty" }, el("td", { colspan: panel.columns.length, text: panel.empty }))));
  return el(
    "section",
    { id: `panel-${panel.id}`, "data-panel": panel.id },
    el("h2", { text: panel.title }),
    el("p", { class: "summary" }, (data.summary ?? []).map((item) => el("span", { class: "chip", "data-label": item.label }, `${item.label} `, el("strong", { text: String(item.value) })))),
    el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), bodies)),
  );
}

async function showRun(id) {
  const run = await get(`/api/runs/${encodeURIComponent(id)}`).catch((error) => notify(error.message, "error"));
  if (!run) return;
  $("run-title").textContent = `Run #${run.id}: ${run.job_name}`;
  const fields = [["status", run.status + (run.dry_run ? " (dry run)" : "")], ["task", run.task], ["attempt", run.attempt], ["node", `${run.node_id ?? "–"}${run.node_host ? ` on ${run.node_host}` : ""}`], ["scheduled for", run.scheduled_for ?? "– (run by hand)"], ["started", run.started_at], ["finished", run.finished_at ?? "–"], ["duration", duration(run.duration_ms)], ["items", `${run.items_processed} processed, ${run.items_failed} failed`], ["message", run.message ?? "–"]];
  $("run-fields").replaceChildren(...fields.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { "data-field": name, text: String(value) })]));
  $("run-payload").textContent = JSON.stringify(run.payload ?? {}, null, 2);
  $("run-details").textContent = run.details ? JSON.stringify(run.details, null, 2) : "–";
  $("run-error").textContent = run.error ?? "–";
  $("run-detail").showModal();
}

async function refresh() {
  const mine = ++latestRefresh;
  const jobFilter = $("runs-job").value;
  const statusFilter = $("runs-status").value;
  const query = new URLSearchParams({ limit: "50", ...(jobFilter ? { job: jobFilter } : {}), ...(statusFilter ? { status: statusFilter } : {}) });
  const [dashboard, schedules, runs, nodes, audit] = await Promise.all([get("/api/dashboard"), get("/api/schedules"), get(`/api/runs?${query}`), get("/api/nodes"), get("/api/audit?limit=20")]);
  if (mine !== latestRefresh) return;
  info = dashboard;
  $("node").textContent = `node ${info.node_id} on ${info.host} · version ${info.version}`;
  showAccess(info, reload);
  fill(document.querySelector("#schedules tbody"), schedules.map(scheduleRow), "no schedules: the crontab is empty");
  $("schedules-count").textContent = `(${schedules.length})`;
  const select = $("runs-job");
  const names = schedules.map((row) => row.job_name);
  if (select.options.length - 1 !== names.length) select.replaceChildren(el("option", { value: "", text: "all" }), ...names.map((name) => el("option", { value: name, text: name, selected: name === jobFilter })));
  fill(document.querySelector("#runs tbody"), runs.map(runRow), jobFilter || statusFilter ? "no runs match" : "no runs yet");
  fill(document.querySelector("#nodes tbody"), nodes.map(nodeRow), "no node is running");
  // A rejected live crontab edit: the schedules shown are the previous ones, not the file's.
  const rejected = nodes.filter((node) => node.crontab_error);
  $("crontab-banner").hidden = rejected.length === 0;
  $("crontab-banner").textContent = rejected
    .map((node) => `crontab rejected at ${new Date(node.crontab_rejected_at).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC")} on ${node.node_id}: ${node.crontab_error}; the previous schedule is in force`)
    .join("\n");
  fill(document.querySelector("#audit tbody"), audit.map(auditRow), "nothing changed by hand yet");
  const panels = await Promise.all(info.panels.map(async (panel) => packPanel(panel, await get(`/api/${panel.api}`))));
  if (mine !== latestRefresh) return;
  $("pack-panels").replaceChildren(...panels);
  $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes ?? 0) + 1);
}

const reload = () => refresh().catch((error) => notify(`could not load: ${error.message}`, "error"));

function start() {
  $("run-close").addEventListener("click", () => $("run-detail").close());
  $("runs-job").addEventListener("change", reload);
  $("runs-status").addEventListener("change", reload);
  reload();
  setInterval(reload, REFRESH_MS);
}

start();
