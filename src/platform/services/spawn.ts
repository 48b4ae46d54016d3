// Starting a service process: detached in its own session and process group (so a stop
// reaches its children, and a Ctrl-C of the scheduler does not), output appended to a log
// file per service, markers in its environment that prove later that we started it.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { SchedulerError } from "../../engine/errors.ts";
import { checkService, ServiceNotAllowed, type Allowlist } from "./allowlist.ts";
import { SERVICE_NAME } from "./names.ts";
import { MARKER_INSTANCE, MARKER_SERVICE, bootId, readProcess, type ProcessIdentity } from "./proc.ts";

export interface SpawnSpec {
  name: string;
  host: string;
  command: string;
  args: string[];
  cwd: string | null;
  env: Record<string, string>;
  port: number;
  instanceId: string;
}

export interface Spawned {
  child: ChildProcess;
  /** Null when the process was gone before its start time could be read. */
  identity: ProcessIdentity | null;
  logFile: string;
}

/** What a service inherits from the scheduler: enough to run, not its secrets (DATABASE_URL...). */
const INHERITED = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR"];

export function serviceEnvironment(spec: Pick<SpawnSpec, "name" | "host" | "env" | "port" | "instanceId">, parent: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(parent)) {
    if (value !== undefined && (INHERITED.includes(key) || key.startsWith("LC_"))) env[key] = value;
  }
  env.PORT = String(spec.port);
  for (const [key, value] of Object.entries(spec.env)) env[key] = String(value);
  env[MARKER_SERVICE] = spec.name;
  env[MARKER_INSTANCE] = spec.instanceId;
  env.SYSTEMPROMPT_SERVICE_HOST = spec.host;
  return env;
}

/** `<logDir>/<name>.log`: one file per service, since a valid name holds no '/' (checkService refuses others). */
export function logFileFor(logDir: string, name: string): string {
  if (!SERVICE_NAME.test(name)) throw new SchedulerError("invalid_service", `service name ${JSON.stringify(name)} cannot name a log file`);
  return path.join(logDir, `${name}.log`);
}

// Not O_NOFOLLOW alone: a FIFO planted at the path would block the open (and the whole node)
// until someone reads it; O_NONBLOCK makes that open fail instead, and has no effect on a
// regular file.
const LOG_FLAGS = fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/** Opens a service's log for appending; never through a symbolic link, never anything but a regular file. */
function openLog(logFile: string, name: string): number {
  const refuse = (what: string) =>
    new SchedulerError("service_log_refused", `cannot open the log file ${logFile} of service ${name}: it ${what}; nothing was started`, {
      hint: `remove ${logFile}; only the scheduler's user should be able to write in SCHEDULER_SERVICES_LOG_DIR`,
    });
  let fd: number;
  try {
    fd = fs.openSync(logFile, LOG_FLAGS, 0o644);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ELOOP") throw refuse("is a symbolic link, which the reconciler does not follow at a log path (it could point to any file)");
    if (code === "ENXIO") throw refuse("is not a regular file (a FIFO)");
    throw error;
  }
  if (!fs.fstatSync(fd).isFile()) {
    fs.closeSync(fd);
    throw refuse("is not a regular file");
  }
  return fd;
}

/** A whole command line in `command` (a row written in SQL, say): where its arguments go instead. */
function wholeLineHint(command: string): string {
  return /\s/.test(command.trim())
    ? `; the command column names one program and its arguments go in args (services add --command "${command}" splits it for you)`
    : "";
}

/**
 * Starts the service if the host's allowlist allows its program: ServiceNotAllowed otherwise,
 * checked here, at the last moment, so no caller can start a service without the check. The
 * resolved real path is what is executed, with argv[0] the allowlist entry that allowed it
 * (a multi-call binary picks its program by argv[0]: never the name the row gives it).
 */
export async function spawnService(spec: SpawnSpec, logDir: string, allowlist: Allowlist): Promise<Spawned> {
  const verdict = checkService(spec, allowlist);
  if (!verdict.allowed) {
    if ("refusal" in verdict) throw new ServiceNotAllowed(spec.name, verdict.refusal, verdict.fix);
    throw new SchedulerError("service_spawn_failed", `could not start service ${spec.name}: ${verdict.notFound}`, { hint: `${verdict.hint}${wholeLineHint(spec.command)}` });
  }
  const logFile = logFileFor(logDir, spec.name);
  let fd: number;
  try {
    fs.mkdirSync(logDir, { recursive: true });
    fd = openLog(logFile, spec.name);
  } catch (error) {
    if (error instanceof SchedulerError) throw error;
    throw new SchedulerError("service_log_unwritable", `cannot open the log file ${logFile} of service ${spec.name}: ${(error as Error).message}`, {
      hint: "make the services log directory writable (SCHEDULER_SERVICES_LOG_DIR)",
      cause: error,
    });
  }
  let child: ChildProcess;
  try {
    fs.writeSync(fd, `\n--- ${new Date().toISOString()} starting ${spec.name} (instance ${spec.instanceId}): ${[spec.command, ...spec.args].join(" ")}\n`);
    child = spawn(verdict.executable, spec.args, {
      argv0: verdict.argv0,
      cwd: spec.cwd ?? undefined,
      env: serviceEnvironment(spec),
      detached: true,
      stdio: ["ignore", fd, fd],
    });
  } finally {
    fs.closeSync(fd); // the child holds its own copy
  }
  const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
  child.on("error", () => {}); // reported through spawnError or the exit record, never thrown
  if (child.pid === undefined) {
    const error = await spawnError;
    throw new SchedulerError("service_spawn_failed", `could not start service ${spec.name}: ${error.message}`, {
      hint: `check that '${spec.command}' exists and is executable${spec.cwd ? ` and that the directory ${spec.cwd} exists` : ""}${wholeLineHint(spec.command)}`,
      cause: error,
    });
  }
  child.unref();
  const info = readProcess(child.pid);
  const identity = info ? { pid: child.pid, startTicks: info.startTicks, bootId: bootId() } : null;
  return { child, identity, logFile };
}
