// Which allowlist entry lets a service run a program, and the name it runs under. Entries
// and the program are compared by real path, so an entry allows one file; but a multi-call
// binary (busybox, toybox, the single-binary coreutils) is many programs in one file, picked
// by argv[0], or by argv[1] when argv[0] is its own name. On a busybox image /bin/ls, /bin/sh
// and /bin/wget are one file. So a program always runs with argv[0] set to the allowed entry,
// never to the name a row gives it; and a file that looks multi-call (a known name, or one
// file allowed under several names) is refused unless the host lists it by its real path,
// which allows everything it can run.
import fs from "node:fs";
import path from "node:path";

/** Multi-call binaries known by the name of their real file (busybox, busybox.static, toybox, coreutils...). */
const KNOWN_MULTI_CALL = /^(busybox|toybox|coreutils)([._-].*)?$/;

export function realpathOrNull(file: string): string | null {
  try {
    return fs.realpathSync.native(file);
  } catch {
    return null;
  }
}

export type ProgramMatch =
  | { allowed: true; argv0: string }
  | { allowed: false; refusal: string; fix: string };

const inside = (real: string, dir: string) => real.startsWith(dir.endsWith("/") ? dir : `${dir}/`);

/**
 * How the entries allow the real path `real` (each entry realpath'd now), reached as `given`
 * (an absolute path, before symlinks are followed); null when no entry allows it.
 */
export function matchProgram(entries: readonly string[], real: string, given: string, variable: string): ProgramMatch | null {
  const names: string[] = []; // the file entries naming `real`, as written (normalised)
  let inAllowedDir = false;
  for (const entry of entries) {
    const allowed = realpathOrNull(entry);
    if (allowed === null) continue;
    if (entry.endsWith("/")) inAllowedDir ||= inside(real, allowed);
    else if (allowed === real && !names.includes(path.resolve(entry))) names.push(path.resolve(entry));
  }
  if (names.length === 0 && !inAllowedDir) return null;
  if (!names.includes(real)) {
    const base = path.basename(real);
    const fix = `list ${real} itself in ${variable} on this host if everything it can run may run there (and restart its scheduler); otherwise allow the services' own programs instead`;
    const as = names.length > 0 ? names.join(", ") : `a directory holding it`;
    if (KNOWN_MULTI_CALL.test(base)) {
      return { allowed: false, refusal: `${real} (allowed as ${as}) is a multi-call binary (${base}: one file, many programs chosen by the name it is started under), so ${variable} refuses it unless it lists ${real} itself`, fix };
    }
    if (names.length > 1) {
      return { allowed: false, refusal: `${names.join(", ")} all resolve to ${real}: one file allowed under several names is taken for a multi-call binary (many programs chosen by the name it is started under), so ${variable} refuses it unless it lists ${real} itself`, fix: `${fix}, or keep one of the names` };
    }
  }
  const normalisedGiven = path.resolve(given);
  return { allowed: true, argv0: names.includes(normalisedGiven) ? normalisedGiven : (names[0] ?? real) };
}

/** File entries the rule above refuses, for a warning when the reconciler starts. */
export function multiCallEntries(entries: readonly string[], variable: string): string[] {
  return entries.filter((entry) => {
    if (entry.endsWith("/")) return false;
    const real = realpathOrNull(entry);
    return real !== null && matchProgram(entries, real, entry, variable)?.allowed === false;
  });
}
