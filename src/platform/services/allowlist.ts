// The host's allowlist of programs services may run (SCHEDULER_SERVICES_ALLOWED_COMMANDS) and
// of the environment variables their rows may set (SCHEDULER_SERVICES_ALLOWED_ENV), or the
// file that holds both. A row in `services` is written by whoever can write the database; what
// it may execute on a host is decided only on that host. The check resolves the program as
// spawn would (PATH, working directory), follows symlinks, and compares real paths; spawn then
// executes the resolved real path under the allowed name, so what runs is what was checked.
// Unset means nothing may run, and a row may set no variable.
import fs from "node:fs";
import path from "node:path";
import { SchedulerError } from "../../engine/errors.ts";
import { matchProgram, realpathOrNull } from "./allowed-program.ts";
import { ENV_ALLOWLIST_VARIABLE, envRefusal, parseEnvAllowlist } from "./env-allowlist.ts";
import { SERVICE_NAME, SERVICE_NAME_RULE, shown } from "./names.ts";
import { findProgram } from "./program.ts";

export const ALLOWLIST_VARIABLE = "SCHEDULER_SERVICES_ALLOWED_COMMANDS";
export const ALLOWLIST_FILE_VARIABLE = "SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE";

/** The parsed allowlist; `source` says where it came from, for messages ("the environment", a file). */
export interface Allowlist {
  /** Absolute paths as given; directories end in '/'. Empty: nothing may run. */
  entries: readonly string[];
  /** Environment variables a row's env may set: names, and prefixes ending in _* (env-allowlist.ts). Empty or absent: none. */
  env?: readonly string[];
  source: string;
}

export const NOTHING_ALLOWED: Allowlist = { entries: [], env: [], source: "unset" };

/**
 * Parses the variable's value: comma-separated (and, in a file, newline-separated) absolute
 * paths, a trailing '/' marking a directory. In a file, a line `env: A, B, MYAPP_*` lists the
 * environment variables rows may set instead. Returns the entries, or one line per bad item.
 */
export function parseAllowlist(text: string, options: { lines?: boolean } = {}): { entries: string[]; env: string[]; problems: string[] } {
  const entries: string[] = [];
  const env: string[] = [];
  const problems: string[] = [];
  const lines = options.lines ? text.split("\n").map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("#")) : [text];
  let n = 0;
  for (const line of lines) {
    const envLine = options.lines ? /^env\s*:/.exec(line) : null;
    if (envLine) {
      const parsed = parseEnvAllowlist(line.slice(envLine[0].length), env.length + 1);
      env.push(...parsed.env);
      problems.push(...parsed.problems);
      continue;
    }
    for (const raw of line.split(",")) {
      n += 1;
      const item = raw.trim();
      if (item === "") problems.push(`item ${n} is empty (a doubled or trailing comma?)`);
      else if (!path.isAbsolute(item)) problems.push(`item ${n} '${item}' is not an absolute path: give e.g. /usr/bin/node, or a directory ending in / such as /opt/agents/bin/`);
      else if (item.includes("\0")) problems.push(`item ${n} contains a NUL byte`);
      else entries.push(item);
    }
  }
  return { entries, env, problems };
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
    const { entries, env, problems } = parseAllowlist(fs.readFileSync(fd, "utf8"), { lines: true });
    if (problems.length > 0) throw fail(`${file}: ${problems.join("; ")}`);
    return { entries, env, source: file };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The allowlist of this host from its configuration: the variables, or the file named
 * instead, which then holds both lists (one place to read what a host allows).
 */
export function hostAllowlist(config: {
  SCHEDULER_SERVICES_ALLOWED_COMMANDS?: string[] | undefined;
  SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE?: string | undefined;
  SCHEDULER_SERVICES_ALLOWED_ENV?: string[] | undefined;
}): Allowlist {
  const file = config.SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE;
  if (file && config.SCHEDULER_SERVICES_ALLOWED_COMMANDS) {
    throw new SchedulerError("invalid_config", `both ${ALLOWLIST_VARIABLE} and ${ALLOWLIST_FILE_VARIABLE} are set`, { hint: "set one of them: the list, or the file that holds it", exitCode: 2 });
  }
  if (file && config.SCHEDULER_SERVICES_ALLOWED_ENV) {
    throw new SchedulerError("invalid_config", `both ${ENV_ALLOWLIST_VARIABLE} and ${ALLOWLIST_FILE_VARIABLE} are set`, {
      hint: `with the file, list the variables rows may set on an env: line of it (env: LOG_LEVEL, MYAPP_*), and unset ${ENV_ALLOWLIST_VARIABLE}`,
      exitCode: 2,
    });
  }
  if (file) return readAllowlistFile(file);
  if (!config.SCHEDULER_SERVICES_ALLOWED_COMMANDS && !config.SCHEDULER_SERVICES_ALLOWED_ENV) return NOTHING_ALLOWED;
  return {
    entries: config.SCHEDULER_SERVICES_ALLOWED_COMMANDS ?? [],
    env: config.SCHEDULER_SERVICES_ALLOWED_ENV ?? [],
    source: config.SCHEDULER_SERVICES_ALLOWED_COMMANDS ? "the environment" : "unset",
  };
}

/** The allowlist file the host's lists come from, or null (the environment, or an embedding program's own list). */
const allowlistFile = (allowlist: Allowlist) => (path.isAbsolute(allowlist.source) ? allowlist.source : null);

/** Entries that cannot match anything (missing, or a file given as a directory and vice versa), for a warning at start. */
export function unusableEntries(allowlist: Allowlist): string[] {
  return allowlist.entries.filter((entry) => {
    const real = realpathOrNull(entry);
    if (real === null) return true;
    const isDir = fs.statSync(real, { throwIfNoEntry: false })?.isDirectory() === true;
    return entry.endsWith("/") !== isDir;
  });
}

export type Verdict =
  /** Run `executable` (the real path checked) with argv[0] the allowlist entry that allows it. */
  | { allowed: true; executable: string; argv0: string }
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
  service: { name: string; command: string; cwd: string | null; env: Record<string, unknown> },
  allowlist: Allowlist,
  parentEnv: NodeJS.ProcessEnv = process.env,
): Verdict {
  if (!SERVICE_NAME.test(service.name)) {
    return {
      allowed: false,
      refusal: `the service name ${shown(service.name)} is not valid (${SERVICE_NAME_RULE}): it names the service's log file, so the row is refused on every host`,
      fix: "add the service again under a valid name (services add), and delete this row",
    };
  }
  const env = envRefusal(service.env, allowlist.env ?? [], allowlistFile(allowlist));
  if (env) return { allowed: false, ...env };
  const cwd = path.resolve(service.cwd ?? ".");
  const lookup = findProgram(service.command, { cwd, pathEnv: parentEnv.PATH });
  if (!lookup.found) return { allowed: false, notFound: lookup.problem, hint: lookup.hint };
  // A path is resolved by the kernel's rules (realpath(3) on the path as given: '..' after a
  // symlink climbs from its target); a bare name is where the PATH lookup found it.
  const given = !service.command.includes("/") ? lookup.path : path.isAbsolute(service.command) ? service.command : `${cwd}/${service.command}`;
  const real = realpathOrNull(given);
  if (real === null) return { allowed: false, notFound: `program ${given} does not exist on this host`, hint: "give the path of an installed program" };
  const from = real === service.command ? "" : ` (resolved from '${service.command}')`;
  if (allowlist.entries.length === 0) {
    return {
      allowed: false,
      refusal: `${allowlist.source === "unset" ? `${ALLOWLIST_VARIABLE} is not set` : `${who(allowlist)} is empty`} on this host, so no service may run here (this one would run ${real}${from})`,
      fix: `list the programs services may run in ${ALLOWLIST_VARIABLE} on this host (e.g. ${ALLOWLIST_VARIABLE}=${real}), restart its scheduler, and the service is tried again`,
    };
  }
  const match = matchProgram(allowlist.entries, real, given, ALLOWLIST_VARIABLE);
  if (!match) {
    return {
      allowed: false,
      refusal: `${real}${from} is not allowed by ${who(allowlist)} on this host`,
      fix: `add ${real} (or a directory holding it, ending in /) to ${ALLOWLIST_VARIABLE} on this host and restart its scheduler, and the service is tried again`,
    };
  }
  if (!match.allowed) return { allowed: false, refusal: match.refusal, fix: match.fix };
  return { allowed: true, executable: real, argv0: match.argv0 };
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
