// The Prometheus text format (version 0.0.4) for metric families whose samples come in bulk
// from one database read: the cluster-wide gauges have thousands of series with a large
// crontab, and prom-client's per-series bookkeeping (a hashed label set per set(), a render
// per scrape) would cost more than reading them.

export type Labels = Record<string, string>;

const escape = (text: string) => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value < 0 ? "-Inf" : "+Inf";
  return String(value);
}

/** One family: its HELP and TYPE lines, then a line per sample (none: the two lines alone). */
export function renderFamily(name: string, help: string, type: "gauge" | "counter", samples: Iterable<[Labels, number]>): string {
  const lines = [`# HELP ${name} ${escape(help)}`, `# TYPE ${name} ${type}`];
  for (const [labels, value] of samples) {
    const pairs = Object.entries(labels).map(([key, text]) => `${key}="${escape(text).replace(/"/g, '\\"')}"`);
    lines.push(`${name}${pairs.length > 0 ? `{${pairs.join(",")}}` : ""} ${formatValue(value)}`);
  }
  return `${lines.join("\n")}\n`;
}
