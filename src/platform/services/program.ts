// Finding the program a service names, the way spawn (execvp) will when the reconciler starts
// it: a name with a '/' is a path (relative to the service's working directory), a bare name
// is looked up in the PATH the service gets. Checked when a service is added on this host, so
// a service that can only fail to start is refused at once, with the fix.
import fs from "node:fs";
import path from "node:path";
import { SchedulerError } from "../../engine/errors.ts";

/** Where execvp looks when PATH is unset (Node's spawn documents the same default). */
const DEFAULT_PATH = "/usr/bin:/bin";

export type ProgramLookup = { found: true; path: string } | { found: false; problem: string; hint: string };

function executableFile(file: string): "ok" | "missing" | "directory" | "not-executable" {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    return "missing";
  }
  if (stat.isDirectory()) return "directory";
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    return "not-executable";
  }
  // root passes X_OK for any file with one execute bit, but exec needs one for someone.
  return stat.isFile() && (stat.mode & 0o111) !== 0 ? "ok" : "not-executable";
}

/**
 * Resolves `program` as spawn will. `cwd` is the service's working directory (absolute);
 * `pathEnv` the PATH in the service's environment.
 */
export function findProgram(program: string, options: { cwd: string; pathEnv: string | undefined }): ProgramLookup {
  if (program.includes("/")) {
    const file = path.resolve(options.cwd, program);
    const state = executableFile(file);
    if (state === "ok") return { found: true, path: file };
    if (state === "missing") return { found: false, problem: `program ${file} does not exist on this host`, hint: "give the path of an installed program" };
    if (state === "directory") return { found: false, problem: `program ${file} is a directory`, hint: "give the path of the program inside it" };
    return {
      found: false,
      problem: `program ${file} is not executable`,
      hint: `make it executable (chmod +x ${file}), or run it through its interpreter, e.g. --command "sh ${file}"`,
    };
  }
  const searched = options.pathEnv ?? DEFAULT_PATH;
  let notExecutable: string | null = null;
  for (const dir of searched.split(path.delimiter)) {
    const file = path.resolve(options.cwd, dir || ".", program); // an empty PATH entry is the working directory
    const state = executableFile(file);
    if (state === "ok") return { found: true, path: file };
    if (state === "not-executable") notExecutable ??= file;
  }
  if (notExecutable) {
    return { found: false, problem: `program '${program}' was found as ${notExecutable}, which is not executable`, hint: `chmod +x ${notExecutable}, or give the path of another program` };
  }
  return {
    found: false,
    problem: `program '${program}' was not found in the PATH of the service (${searched}) on this host`,
    hint: `install it, give its full path (e.g. --command "/usr/bin/${program} ..."), or set the PATH the service gets with --env PATH=...`,
  };
}

/**
 * Refuses (SchedulerError) a service whose program or working directory cannot work on this
 * host. A relative program path is refused without a working directory: the reconciler would
 * resolve it against its own working directory, not the one of the person adding the service.
 */
export function assertRunnableHere(service: { command: string; cwd: string | null; env: Record<string, string> }, parentEnv: NodeJS.ProcessEnv = process.env): void {
  const fail = (problem: string, hint: string) => new SchedulerError("program_not_runnable", `${problem}; the service could never start`, { hint, exitCode: 2 });
  if (service.command.includes("/") && !path.isAbsolute(service.command) && service.cwd === null) {
    throw fail(
      `program '${service.command}' is a relative path, and the reconciler would resolve it against its own working directory`,
      `give its full path (--command "${path.resolve(service.command)} ..."), or the directory it is relative to with --cwd DIR`,
    );
  }
  const cwd = path.resolve(service.cwd ?? ".");
  if (service.cwd !== null && !fs.statSync(cwd, { throwIfNoEntry: false })?.isDirectory()) {
    throw fail(`working directory ${cwd} does not exist on this host`, "create it, or give another --cwd");
  }
  const lookup = findProgram(service.command, { cwd, pathEnv: service.env.PATH ?? parentEnv.PATH });
  if (!lookup.found) throw fail(lookup.problem, lookup.hint);
}
