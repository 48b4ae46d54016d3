// A real PgBouncer (Debian's package, installed by .ci/run) in front of the test server, in
// the pool mode a test asks for. Started in the foreground as a child process, stopped by the
// test; as root it drops to the `postgres` user (PgBouncer refuses to run as root).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { freePort } from "../../scripts/free-port.ts";
import { adminUrl } from "./db.ts";

export type PoolMode = "session" | "transaction" | "statement";

export const pgbouncerBinary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"].find((file) => fs.existsSync(file)) ?? null;

export interface PgBouncer {
  port: number;
  /** The URL of `database` through this PgBouncer. */
  urlFor(database: string): string;
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

export async function startPgBouncer(mode: PoolMode, options: { poolSize?: number } = {}): Promise<PgBouncer> {
  if (!pgbouncerBinary) throw new Error("pgbouncer is not installed: apt-get install pgbouncer (.ci/run does)");
  const server = new URL(adminUrl());
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sps-pgbouncer-${mode}-`));
  fs.chmodSync(dir, 0o777);
  const logFile = path.join(dir, "pgbouncer.log");
  const target = [`host=${server.hostname}`, `port=${server.port || 5432}`, `user=${decodeURIComponent(server.username || "postgres")}`, server.password ? `password=${decodeURIComponent(server.password)}` : ""].join(" ").trim();
  const config = [
    "[databases]",
    `* = ${target}`,
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${port}`,
    "unix_socket_dir =",
    "auth_type = any",
    `pool_mode = ${mode}`,
    "max_client_conn = 500",
    `default_pool_size = ${options.poolSize ?? 40}`,
    "ignore_startup_parameters = extra_float_digits,options",
    `logfile = ${logFile}`,
    "",
  ].join("\n");
  const configFile = path.join(dir, "pgbouncer.ini");
  fs.writeFileSync(configFile, config, { mode: 0o644 });
  const asRoot = process.getuid?.() === 0;
  if (asRoot) spawnSync("chown", ["-R", "postgres", dir]);
  const child = spawn(pgbouncerBinary, [...(asRoot ? ["-u", "postgres"] : []), configFile], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk) => (stderr += chunk));
  try {
    await waitForPort(port, 10_000, child, logFile);
  } catch (error) {
    child.kill("SIGKILL");
    throw new Error(`${(error as Error).message}\n${stderr}`);
  }
  return {
    port,
    urlFor(database) {
      const url = new URL(adminUrl());
      url.hostname = "127.0.0.1";
      url.port = String(port);
      url.pathname = `/${database}`;
      return url.toString();
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
