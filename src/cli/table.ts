/** Renders rows as an aligned text table for a person; `--json` output bypasses this. */
export function renderTable(rows: Record<string, unknown>[], columns: { key: string; header?: string }[]): string {
  if (rows.length === 0) return "(none)";
  const cells = rows.map((row) => columns.map((column) => formatCell(row[column.key])));
  const headers = columns.map((column) => column.header ?? column.key);
  const widths = headers.map((header, i) => Math.max(header.length, ...cells.map((line) => line[i]!.length)));
  const line = (values: string[]) => values.map((value, i) => value.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}

export function formatCell(value: unknown): string {
  if (value === null || value === undefined) return "-";
  if (value instanceof Date) return value.toISOString().replace(/\.\d{3}Z$/, "Z");
  if (typeof value === "object") return JSON.stringify(value);
  const text = String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Prints JSON for machines: dates as ISO strings, bigint-ish strings left as they are. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
