// Small DOM helpers for the dashboard. Data is only ever set as text (never as HTML), so
// nothing a job writes into its history can become markup or script on this page.

/** An element with attributes (`class`, `data-*`, `title`...) and children (text or nodes). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** `5 s ago`, `in 3 min`; with the exact UTC time in the title. */
export function when(iso) {
  if (!iso) return el("span", { class: "muted", text: "–" });
  const t = Date.parse(iso);
  const seconds = Math.round((t - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  const amount = abs < 60 ? `${abs} s` : abs < 3600 ? `${Math.round(abs / 60)} min` : abs < 172800 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  const text = abs < 2 ? "now" : seconds < 0 ? `${amount} ago` : `in ${amount}`;
  return el("time", { datetime: iso, title: new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"), text });
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  const n = Number(ms);
  if (n < 1000) return `${n} ms`;
  if (n < 60000) return `${(n / 1000).toFixed(1)} s`;
  return `${Math.floor(n / 60000)} min ${Math.round((n % 60000) / 1000)} s`;
}

export const badge = (text, kind = text) => el("span", { class: `badge s-${String(kind).replace(/[^a-z_-]/gi, "")}`, text });

const SVG = "http://www.w3.org/2000/svg";

/** The runs (oldest first) as bars coloured by status, taller for longer runs. */
export function sparkline(runs, onPick) {
  const width = 30 * 5;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} 20`);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("data-runs", String(runs.length));
  const statuses = runs.map((run) => run.status);
  svg.setAttribute("aria-label", runs.length ? `last ${runs.length} runs: ${statuses.join(", ")}` : "no runs yet");
  const longest = Math.max(1, ...runs.map((run) => Number(run.duration_ms) || 0));
  runs.forEach((run, index) => {
    const scaled = run.duration_ms ? Math.log1p(run.duration_ms) / Math.log1p(longest) : 0;
    const height = 6 + Math.round(14 * scaled);
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", String(index * 5));
    rect.setAttribute("y", String(20 - height));
    rect.setAttribute("width", "4");
    rect.setAttribute("height", String(height));
    rect.setAttribute("class", `s-${run.status}`);
    rect.setAttribute("data-status", run.status);
    const title = document.createElementNS(SVG, "title");
    title.textContent = `#${run.id} ${run.status} ${run.started_at} ${duration(run.duration_ms)}`;
    rect.append(title);
    rect.addEventListener("click", () => onPick(run.id));
    svg.append(rect);
  });
  return svg;
}

/** A table body's rows replaced; `empty` is shown across all columns when there are none. */
export function fill(tbody, rows, empty) {
  const columns = tbody.closest("table").querySelectorAll("thead th").length;
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", { class: "empty" }, el("td", { colspan: columns, text: empty }))]));
}

/** A cell with its column's name for the phone layout (CSS shows it before the value). */
export const cell = (label, field, ...children) => el("td", { "data-label": label, "data-field": field }, ...children);
