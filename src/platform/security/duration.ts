import type { ParseResult } from "./ip.ts";

// Ban durations as an operator types them: "30m", "12h", "7d", "2w", or combined "1d12h".

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };
const MAX_SECONDS = 3650 * 86_400;

/** Seconds in a duration such as "7d" or "1d12h"; at least one second, at most 3650 days. */
export function parseDuration(text: string): ParseResult<number> {
  const value = text.trim().toLowerCase();
  const hint = "use a number and a unit (s, m, h, d, w), e.g. 30m, 12h, 7d, 2w or 1d12h; for a ban without end use --permanent";
  if (!/^(\d+[smhdw])+$/.test(value)) {
    return { ok: false, error: `'${text}' is not a duration: ${hint}` };
  }
  let seconds = 0;
  for (const [, amount, unit] of value.matchAll(/(\d+)([smhdw])/g)) {
    seconds += Number(amount) * UNIT_SECONDS[unit!]!;
  }
  if (seconds < 1) return { ok: false, error: `'${text}' is not a duration: it must be longer than zero` };
  if (seconds > MAX_SECONDS) return { ok: false, error: `'${text}' is longer than 3650 days: ${hint}` };
  return { ok: true, value: seconds };
}
