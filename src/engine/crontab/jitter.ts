import crypto from "node:crypto";

// `?jitter=`: each tick of an entry starts after a delay in [0, jitter). Every node works the
// delay out for itself, and all must agree (they all offer the tick's job to graphile-worker,
// which keeps one): so it is a hash of the entry's identifier and the tick, not a random draw.

/** The delay of the tick `tickIso` (graphile-worker's `_cron.ts`) of entry `identifier`, in [0, maxMs). */
export function jitterDelay(identifier: string, tickIso: string, maxMs: number): number {
  if (maxMs <= 0) return 0;
  const digest = crypto.createHash("sha256").update(`${identifier}\n${new Date(tickIso).toISOString()}`).digest();
  // 48 bits, spread evenly over [0, maxMs) (a day is under 2^27 ms: no visible bias).
  return Math.floor((digest.readUIntBE(0, 6) / 2 ** 48) * maxMs);
}
