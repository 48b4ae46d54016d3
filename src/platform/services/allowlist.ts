// The host's allowlist of programs services may run (SCHEDULER_SERVICES_ALLOWED_COMMANDS).
// A row in `services` is written by whoever can write the database; what it may execute on a
// host is decided only on that host. The check resolves the program as spawn would (PATH,
// working directory), follows symlinks, and compares real paths; spawn then executes the
// resolved real path, so what runs is what was checked. Unset means nothing may run.
import fs from "node:fs";
import path from "node:path";
import { SchedulerError } from "../../engine/errors.ts";
import { findProgram } from "./program.ts";

export const ALLOWLIST_VARIABLE = "SCHEDULER_SERVICES_ALLOWED_COMMANDS";
export const ALLOWLIST_FILE_VARIABLE = "SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE";

/** The parsed allowlist; `source` says where it came from, for messages ("the environment", a file). */
export interface Allowlist {
  /** Absolute paths as given; directories end in '/'. Empty: nothing may run. */
  entries: readonly string[];
  source: string;
}

export const NOTHING_ALLOWED: Allowlist = { entries: [], source: "unset" };

/**
 * Environment variables a row may not set: each changes which code a program loads or runs
 * (dynamic loader, interpreter start-up files and module paths, shell start-up files), so an
 * allowed program could be made to run anything. PATH is here too: the service gets the node's.
 */
export const REFUSED_ENV = [
  "PATH",
  "NODE_OPTIONS", "NODE_PATH",
  "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONINSPECT",
  "PERL5LIB", "PERL5OPT", "PERLLIB",
  "RUBYOPT", "RUBYLIB",
  "BASH_ENV", "ENV", "SHELLOPTS",
  "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH",
  "GCONV_PATH", "LUA_INIT", "LUA_PATH", "LUA_CPATH",
] as const;
/** Whole families: the glibc loader (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT...), macOS dyld, bash exported functions. */
export const REFUSED_ENV_PREFIXES = ["LD_", "DYLD_", "BASH_FUNC_"] as const;

export function refusedEnvKey(key: string): boolean {
  return (REFUSED_ENV as readonly string[]).includes(key) || REFUSED_ENV_PREFIXES.some((prefix) => key.startsWith(prefix));
}

/**
 * Parses the variable's value: comma-separated (and, in a file, newline-separated) absolute
 * paths, a trailing '/' marking a directory. Returns the entries, or one line per bad item.
 */
export function parseAllowlist(text: string, options: { lines?: boolean } = {}): { entries: string[]; problems: string[] } {
  const entries: string[] = [];
  const problems: string[] = [];
  const lines = options.lines ? text.split("\n").map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("#")) : [text];
  let n = 0;
  for (const line of lines) {
    for (const raw of line.split(",")) {
      n += 1;
      const item = raw.trim();
      if (item === "") problems.push(`item ${n} is empty (a doubled or trailing comma?)`);
      else if (!path.isAbsolute(item)) problems.push(`item ${n} '${item}' is not an absolute path: give e.g. /usr/bin/node, or a directory ending in / such as /opt/agents/bin/`);
      else if (item.includes("\0")) problems.push(`item ${n} contains a NUL byte`);
      else entries.push(item);
    }
  }
  return { entries, problems };
}

/**
 * The permission rule of an allowlist file: a regular file, owned by the node's user, that
 * nobody else can read or write (chmod 600 or 400). Otherwise another user could widen what
 * this host runs. Returns the problem, or null.
 */
export function allowlistFileProblem(file: string, stat: { uid: number; mode: number; isFile: boolean }, uid: number): string | null {
  if (!stat.isFile) return `${file} is not a regular file`;
  if (stat.uid !== uid) return `${file} is owned by uid ${stat.uid}, not by this node's user (uid ${uid}); fix: chown it to the user the scheduler runs as`;
  const loose = stat.mode & 0o077;
  if (loose !== 0) return `${file} can be ${loose & 0o022 ? "written" : "read"} by other users (mode ${(stat.mode & 0o777).toString(8).padStart(3, "0")}); fix: chmod 600 ${file}`;
  return null;
}

/** Reads and checks an allowlist file; SchedulerError (exit 2) naming the problem and the fix. */
export function readAllowlistFile(file: string): Allowlist {
  const fail = (problem: string) =>
    new SchedulerError("invalid_config", `${ALLOWLIST_FILE_VARIABLE}: ${problem}`, {
      hint: `the file lists the programs services may run on this host; it must be readable only by the scheduler's user (chown, chmod 600)`,
      exitCode: 2,
    });
  if (!path.isAbsolute(file)) throw fail(`'${file}' is not an absolute path`);
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (error) {
    throw fail(`cannot open ${file}: ${(error as Error).message}`);
  }
  try {
    // fstat of the opened file: the file checked is the file read
    const stat = fs.fstatSync(fd);
    const problem = allowlistFileProblem(file, { uid: stat.uid, mode: stat.mode, isFile: stat.isFile() }, process.getuid?.() ?? -1);
    if (problem) throw fail(problem);
    const { entries, problems } = parseAllowlist(fs.readFileSync(fd, "utf8"), { lines: true });
    if (problems.length > 0) throw fail(`${file}: ${problems.join("; ")}`);
    return { entries, source: file };
  } finally {
    fs.closeSync(fd);
  }
}

/** The allowlist of this host from its configuration: the variable, or the file it names (never both). */
export function hostAllowlist(config: { SCHEDULER_SERVICES_ALLOWED_COMMANDS?: string[] | undefined; SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE?: string | undefined }): Allowlist {
  if (config.SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE && config.SCHEDULER_SERVICES_ALLOWED_COMMANDS) {
    throw new SchedulerError("invalid_config", `both ${ALLOWLIST_VARIABLE} and ${ALLOWLIST_FILE_VARIABLE} are set`, { hint: "set one of them: the list, or the file that holds it", exitCode: 2 });
  }
  if (config.SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE) return readAllowlistFile(config.SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE);
  if (config.SCHEDULER_SERVICES_ALLOWED_COMMANDS) return { entries: config.SCHEDULER_SERVICES_ALLOWED_COMMANDS, source: "the environment" };
  return NOTHING_ALLOWED;
}

function realpath(file: string): string | null {
  try {
    return fs.realpathSync.native(file);
  } catch {
    return null;
  }
}

/** Entries that cannot match anything (missing, or a file given as a directory and vice versa), for a warning at start. */
export function unusableEntries(allowlist: Allowlist): string[] {
  return allowlist.entries.filter((entry) => {
    const real = realpath(entry);
    if (real === null) return true;
    const isDir = fs.statSync(real, { throwIfNoEntry: false })?.isDirectory() === true;
    return entry.endsWith("/") !== isDir;
  });
}

/** True when the real path `real` is an allowed file or lies under an allowed directory (each realpath'd now). */
export function allowsPath(allowlist: Allowlist, real: string): boolean {
  for (const entry of allowlist.entries) {
    const allowed = realpath(entry);
    if (allowed === null) continue;
    if (entry.endsWith("/")) {
      if (real.startsWith(allowed.endsWith("/") ? allowed : `${allowed}/`)) return true;
    } else if (real === allowed) {
      return true;
    }
  }
  return false;
}

export type Verdict =
  | { allowed: true; executable: string }
  /** Refused by the host's rules: never retried until the row or the allowlist changes. */
  | { allowed: false; refusal: string; fix: string }
  /** The program is missing or not executable: an ordinary start failure (it may be installed later). */
  | { allowed: false; notFound: string; hint: string };

const who = (allowlist: Allowlist) => (allowlist.source === "the environment" || allowlist.source === "unset" ? ALLOWLIST_VARIABLE : `${ALLOWLIST_VARIABLE} (from ${allowlist.source})`);

/**
 * Decides whether a service may run on this host, and what exactly to execute. `parentEnv` is
 * the node's environment (its PATH is the one the service gets); `cwd` defaults to the node's.
 */
export function checkService(
  service: { command: string; cwd: string | null; env: Record<string, string> },
  allowlist: Allowlist,
  parentEnv: NodeJS.ProcessEnv = process.env,
): Verdict {
  const refusedKeys = Object.keys(service.env).filter(refusedEnvKey);
  if (refusedKeys.length > 0) {
    return {
      allowed: false,
      refusal: `environment variable${refusedKeys.length > 1 ? "s" : ""} ${refusedKeys.join(", ")} in the service's env may change which program runs, so ${ALLOWLIST_VARIABLE} refuses the row on every host`,
      fix: `remove ${refusedKeys.join(", ")} from its env (the service gets this node's PATH); wrap the program in an allowed script if it truly needs them`,
    };
  }
  const cwd = path.resolve(service.cwd ?? ".");
  const lookup = findProgram(service.command, { cwd, pathEnv: parentEnv.PATH });
  if (!lookup.found) return { allowed: false, notFound: lookup.problem, hint: lookup.hint };
  // A path is resolved by the kernel's rules (realpath(3) on the path as given: '..' after a
  // symlink climbs from its target); a bare name is where the PATH lookup found it.
  const given = !service.command.includes("/") ? lookup.path : path.isAbsolute(service.command) ? service.command : `${cwd}/${service.command}`;
  const real = realpath(given);
  if (real === null) return { allowed: false, notFound: `program ${given} does not exist on this host`, hint: "give the path of an installed program" };
  const from = real === service.command ? "" : ` (resolved from '${service.command}')`;
  if (allowlist.entries.length === 0) {
    return {
      allowed: false,
      refusal: `${allowlist.source === "unset" ? `${ALLOWLIST_VARIABLE} is not set` : `${who(allowlist)} is empty`} on this host, so no service may run here (this one would run ${real}${from})`,
      fix: `list the programs services may run in ${ALLOWLIST_VARIABLE} on this host (e.g. ${ALLOWLIST_VARIABLE}=${real}), restart its scheduler, and the service is tried again`,
    };
  }
  if (!allowsPath(allowlist, real)) {
    return {
      allowed: false,
      refusal: `${real}${from} is not allowed by ${who(allowlist)} on this host`,
      fix: `add ${real} (or a directory holding it, ending in /) to ${ALLOWLIST_VARIABLE} on this host and restart its scheduler, and the service is tried again`,
    };
  }
  return { allowed: true, executable: real };
}

/** A service the host's allowlist refuses: the row is marked `failed`, and it is not retried. */
export class ServiceNotAllowed extends SchedulerError {
  constructor(name: string, refusal: string, fix: string) {
    super("service_not_allowed", `not allowed to run service ${name}: ${refusal}; nothing was run`, { hint: fix });
    this.name = "ServiceNotAllowed";
  }
}

/** The text every refusal's last_error begins with: how a restart finds the rows to try again. */
export const REFUSAL_PREFIX = "not allowed to run service ";
