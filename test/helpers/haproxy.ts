// A real HAProxy (Debian's package, installed by .ci/run) in front of a replicated cluster, set
// up as Patroni's documentation has it: TCP mode, each server checked with `GET /primary` on its
// Patroni REST port, `on-marked-down shutdown-sessions`. Patroni itself is not run: each server's
// REST port is served here by a stand-in that answers /primary as Patroni does (200 for the
// running primary, 503 otherwise), from the server's own pg_is_in_recovery().
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { freePort } from "../../scripts/free-port.ts";
import type { Server } from "./replication.ts";
import { eventually } from "./wait.ts";

export const haproxyBinary = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find((file) => fs.existsSync(file)) ?? null;

export interface HaProxy {
  port: number;
  urlFor(database: string): string;
  /** Resolves once HAProxy sends new connections to `server` (its check passed). */
  routesTo(server: Server): Promise<void>;
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
});

/** Patroni's `GET /primary`, for one server: 200 when it runs and is not in recovery. */
async function patroniStandIn(server: Server): Promise<{ port: number; close(): Promise<void> }> {
  const port = await freePort();
  const httpServer = http.createServer((request, response) => {
    const client = new pg.Client({ connectionString: server.url("postgres"), connectionTimeoutMillis: 500 });
    client.on("error", () => {});
    client
      .connect()
      .then(() => client.query<{ recovery: boolean }>("select pg_is_in_recovery() as recovery"))
      .then(
        ({ rows }) => response.writeHead(request.url === "/primary" && !rows[0]!.recovery ? 200 : 503).end(),
        () => response.writeHead(503).end(),
      )
      .finally(() => client.end().catch(() => {}));
  });
  await new Promise<void>((resolve) => httpServer.listen(port, "127.0.0.1", resolve));
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      httpServer.close(() => resolve());
      httpServer.closeAllConnections();
    }),
  };
}

export async function startHaProxy(servers: Server[]): Promise<HaProxy> {
  if (!haproxyBinary) throw new Error("haproxy is not installed: apt-get install haproxy (.ci/run does)");
  const standIns = await Promise.all(servers.map(patroniStandIn));
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-haproxy-"));
  const config = [
    "global",
    "  maxconn 1000",
    "defaults",
    "  mode tcp",
    "  timeout connect 3s",
    "  timeout client 30m",
    "  timeout server 30m",
    "  timeout check 1s",
    "listen postgres",
    `  bind 127.0.0.1:${port}`,
    "  option httpchk",
    "  http-check send meth GET uri /primary",
    "  http-check expect status 200",
    // Checks every 500 ms, down after 2 failures: the test does not wait Patroni's default 3 s.
    "  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions",
    ...servers.map((server, i) => `  server ${server.name} 127.0.0.1:${server.port} check port ${standIns[i]!.port}`),
    "",
  ].join("\n");
  const configFile = path.join(dir, "haproxy.cfg");
  fs.writeFileSync(configFile, config);
  const child = spawn(haproxyBinary, ["-db", "-f", configFile], { stdio: ["ignore", "ignore", "pipe"] });
  children.add(child);
  let stderr = "";
  child.stderr?.on("data", (chunk) => (stderr += chunk));
  child.once("exit", () => children.delete(child));
  const routesTo = (server: Server) =>
    eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}: ${stderr}`);
        const client = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`, connectionTimeoutMillis: 1000 });
        client.on("error", () => {});
        try {
          await client.connect();
          return Number((await client.query<{ port: string }>("select current_setting('port') as port")).rows[0]!.port) === server.port;
        } finally {
          await client.end().catch(() => {});
        }
      },
      { timeoutMs: 20_000, intervalMs: 100, what: `HAProxy to route to ${server.name}` },
    ).then(() => undefined);
  await eventually(async () => new Promise<boolean>((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => (socket.destroy(), resolve(false)));
  }), { timeoutMs: 10_000, what: "haproxy to listen" });
  return {
    port,
    urlFor: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    routesTo,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      await Promise.all(standIns.map((standIn) => standIn.close()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
