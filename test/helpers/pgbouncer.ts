// A real PgBouncer (Debian's package, installed by .ci/run) in front of the test server (or any
// `target`), in the pool mode a test asks for. Started in the foreground as a child process,
// stopped by the test; as root it drops to the `postgres` user (PgBouncer refuses to run as
// root). `repoint` moves it to another server the way operators fail over: the `[databases]`
// line is rewritten and RELOAD issued on the admin console. Server connections in use keep
// their server until their client lets go (in session mode: disconnects); new ones go to the
// new target.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { freePort } from "../../scripts/free-port.ts";
import { adminUrl } from "./db.ts";

export type PoolMode = "session" | "transaction" | "statement";

export const pgbouncerBinary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].find((file) => fs.existsSync(file)) ?? null;

// A PgBouncer never outlives the test process (it would keep its port and folder forever).
const running = new Map<ChildProcess, string>();
process.on("exit", () => {
  for (const [child, dir] of running) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

export interface PgBouncerTarget {
  host: string;
  port: number;
}

export interface PgBouncer {
  port: number;
  /** The URL of `database` through this PgBouncer. */
  urlFor(database: string): string;
  /** The URL of the admin console (SHOW ..., RELOAD; simple queries without parameters only). */
  adminUrl(): string;
  /** Sends every database to `target` from now on (ini rewritten, RELOAD); resolves once SHOW DATABASES says so. */
  repoint(target: PgBouncerTarget): Promise<void>;
  log(): string;
  stop(): Promise<void>;
}

function waitForPort(port: number, timeoutMs: number, child: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`pgbouncer exited ${child.exitCode}: ${fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : ""}`));
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve();
      });
      socket.once("error", () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`pgbouncer did not listen on ${port} within ${timeoutMs} ms`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** `target`: the server behind it (default: the one TEST_DATABASE_URL names, with its user). */
export async function startPgBouncer(mode: PoolMode, options: { poolSize?: number; target?: PgBouncerTarget } = {}): Promise<PgBouncer> {
  if (!pgbouncerBinary) throw new Error("pgbouncer is not installed: apt-get install pgbouncer (.ci/run does)");
  // With a target, log in as `postgres` without a password (trust), as the replication fixture
  // allows; otherwise as the test server's user.
  const login = options.target ? new URL("postgres://postgres@127.0.0.1") : new URL(adminUrl());
  const user = decodeURIComponent(login.username || "postgres");
  const password = login.password ? decodeURIComponent(login.password) : "";
  let target: PgBouncerTarget = options.target ?? { host: login.hostname, port: Number(login.port || 5432) };
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sps-pgbouncer-${mode}-`));
  fs.chmodSync(dir, 0o777);
  const logFile = path.join(dir, "pgbouncer.log");
  const configFile = path.join(dir, "pgbouncer.ini");
  const config = () =>
    [
      "[databases]",
      `* = ${[`host=${target.host}`, `port=${target.port}`, `user=${user}`, password ? `password=${password}` : ""].join(" ").trim()}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = any",
      // The admin console (database `pgbouncer`) for RELOAD and SHOW.
      `admin_users = ${user}`,
      `pool_mode = ${mode}`,
      "max_client_conn = 500",
      `default_pool_size = ${options.poolSize ?? 40}`,
      "ignore_startup_parameters = extra_float_digits,options",
      // The defaults would hold clients long after a failover: after a failed connect or login
      // PgBouncer waits server_login_retry (15 s) before trying the server again, a connect
      // to a host that does not answer takes server_connect_timeout (15 s) to fail, and an
      // idle server connection released less than server_check_delay (30 s) ago is handed
      // out unchecked, dead server or not. Retry every second, give up connecting after 3 s,
      // and run server_check_query before each reuse.
      "server_login_retry = 1",
      "server_connect_timeout = 3",
      "server_check_delay = 0",
      `logfile = ${logFile}`,
      "",
    ].join("\n");
  fs.writeFileSync(configFile, config(), { mode: 0o644 });
  const asRoot = process.getuid?.() === 0;
  if (asRoot) spawnSync("chown", ["-R", "postgres", dir]);
  const child = spawn(pgbouncerBinary, [...(asRoot ? ["-u", "postgres"] : []), configFile], { stdio: ["ignore", "ignore", "pipe"] });
  running.set(child, dir);
  child.once("exit", () => running.delete(child));
  let stderr = "";
  child.stderr?.on("data", (chunk) => (stderr += chunk));
  try {
    await waitForPort(port, 10_000, child, logFile);
  } catch (error) {
    child.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`${(error as Error).message}\n${stderr}`);
  }
  const urlFor = (database: string) => {
    const url = new URL(login.toString());
    url.hostname = "127.0.0.1";
    url.port = String(port);
    url.pathname = `/${database}`;
    return url.toString();
  };
  const admin = async <R extends pg.QueryResultRow>(command: string): Promise<R[]> => {
    const client = new pg.Client({ connectionString: urlFor("pgbouncer"), connectionTimeoutMillis: 5000 });
    client.on("error", () => {});
    await client.connect();
    try {
      return (await client.query<R>(command)).rows;
    } finally {
      await client.end().catch(() => {});
    }
  };
  return {
    port,
    urlFor,
    adminUrl: () => urlFor("pgbouncer"),
    async repoint(next) {
      target = { host: next.host, port: next.port };
      fs.writeFileSync(configFile, config());
      await admin("RELOAD");
      const deadline = Date.now() + 10_000;
      for (;;) {
        const rows = await admin<{ name: string; host: string | null; port: number | string }>("SHOW DATABASES");
        const stale = rows.filter((row) => row.name !== "pgbouncer" && (row.host !== target.host || Number(row.port) !== target.port));
        if (stale.length === 0) return;
        if (Date.now() > deadline) throw new Error(`pgbouncer still sends ${stale.map((row) => `${row.name} to ${row.host}:${row.port}`).join(", ")} after RELOAD`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : ""),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGINT");
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
