import fs from "node:fs";

// libfaketime (Debian's `faketime` package), preloaded into a process, moves the wall clock
// that process reads (and its children read) by a fixed offset: a node whose clock is off,
// on the same machine as its database. The monotonic clock is left alone, as NTP leaves it.

const CANDIDATES = [
  "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
  "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
  "/usr/lib/faketime/libfaketime.so.1",
];

/** The library, or null when libfaketime is not installed. */
export const faketimeLibrary: string | null = CANDIDATES.find((file) => fs.existsSync(file)) ?? null;

/** The environment of a process whose wall clock is `offsetS` seconds off (negative: behind). */
export function skewedClockEnv(offsetS: number): Record<string, string> {
  if (!faketimeLibrary) throw new Error("libfaketime is not installed: apt-get install faketime");
  return { LD_PRELOAD: faketimeLibrary, FAKETIME: `${offsetS >= 0 ? "+" : ""}${offsetS}`, FAKETIME_DONT_FAKE_MONOTONIC: "1" };
}
