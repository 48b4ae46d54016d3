// A real PostgreSQL 15 primary with streaming standbys on this machine, for failover tests:
// crash or demote the primary, promote a standby, put a re-pointable PgBouncer in front
// (pgbouncer.ts). Each server is a `postgres` child process of the test (as the `postgres` user
// when we are root), in its own process group, in a temporary folder `sps-repl-*`.
//
// Not supported: a crashed primary rejoining (it would need a fresh copy or pg_rewind). After a
// promotion the new primary replicates asynchronously to the standbys that follow it;
// addStandby({ synchronous: true }) gives it a synchronous one.
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { freePort } from "../../scripts/free-port.ts";
import { eventually } from "./wait.ts";

const candidates = [process.env.PG_REPLICATION_BINARIES, "/usr/lib/postgresql/15/bin"];
const required = ["initdb", "pg_ctl", "pg_basebackup", "postgres"];
export const replicationBinaries: string | null = candidates.find((dir): dir is string => !!dir && required.every((bin) => fs.existsSync(path.join(dir, bin)))) ?? null;

export interface Server {
  name: string;
  port: number;
  dataDir: string;
  /** postgres://postgres@127.0.0.1:PORT/DATABASE (database `postgres` by default). */
  url(database?: string): string;
  running(): boolean;
  /** The server's log so far (for failure messages). */
  log(): string;
}

export interface ReplicatedCluster {
  /** The current primary (another server after promote). */
  primary: Server;
  /** The current standbys, streaming from `primary`. */
  standbys: Server[];
  /** Every server ever started, stopped or not. */
  servers: Server[];
  /** pg_ctl stop -m immediate of the current primary (a crash). */
  crashPrimary(): Promise<void>;
  /**
   * pg_ctl promote of a standby (the first by default); it becomes `primary`. Waits until it is
   * out of recovery and a write succeeds; returns Date.now() when that write returned. Other
   * standbys are re-pointed at it and kept in `standbys` if they follow it within 15 s (they
   * cannot when they replayed past the promotion point; those are left running, out of
   * `standbys`). An old primary still running keeps its synchronous_standby_names: its commits
   * would wait for the standby it lost (make it read-only first, as a demotion does).
   */
  promote(standby?: Server): Promise<number>;
  /**
   * What a demotion looks like to connected clients: default_transaction_read_only = on by
   * ALTER SYSTEM and reload, connections kept. Waits until a new connection sees it.
   */
  makeReadOnly(server: Server): Promise<void>;
  /** A new standby of the current primary (pg_basebackup -R -X stream), started and streaming. */
  addStandby(options?: { synchronous?: boolean }): Promise<Server>;
  /** Waits until every standby has replayed the primary's current WAL position. */
  caughtUp(): Promise<void>;
  /** Stops every server and removes the temporary folder. */
  stop(): Promise<void>;
}

export interface ReplicatedClusterOptions {
  /** How many standbys to start (default 1). */
  standbys?: number;
  /** The first standby becomes synchronous (synchronous_standby_names = '*'). */
  synchronous?: boolean;
  maxConnections?: number;
  /** Databases created on the primary before the standbys are copied. */
  databases?: string[];
}

// In database `postgres`, created before any copy: promote proves the new primary takes writes
// with a real one (pg_is_in_recovery() = false alone does not: it may still be read-only).
const PROBE_TABLE = "sps_replication_probe";

interface ServerHandle extends Server {
  dir: string;
  child: ChildProcess | null;
  exited: Promise<void>;
}

// Every server still running is killed when the test process exits (as `exit` runs for normal
// ends, process.exit and uncaught errors); a SIGKILLed test process is covered by the watchdog
// below.
const live = new Set<ServerHandle>();
const baseDirs = new Set<string>();
process.on("exit", () => {
  for (const server of live) killGroup(server);
  for (const dir of baseDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function killGroup(server: ServerHandle): void {
  const pid = postmasterPid(server.dataDir) ?? server.child?.pid;
  if (!pid) return;
  // The postmaster leads its own process group: its backends die with it instead of lingering.
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, "SIGKILL");
    } catch {}
  }
}

function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

let cachedIds: { uid: number; gid: number } | undefined | null = null;
function postgresIds(): { uid: number; gid: number } | undefined {
  if (cachedIds !== null) return cachedIds;
  if (process.getuid?.() !== 0) return (cachedIds = undefined);
  const id = (flag: string) => Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
  const uid = id("-u");
  const gid = id("-g");
  if (!uid || !gid) throw new Error("running as root, but there is no `postgres` user to run PostgreSQL as (initdb refuses root)");
  return (cachedIds = { uid, gid });
}

// Settings of whoever runs the tests (PGHOST, PGPORT, PGDATABASE, ...) must not leak into the
// tools, which get every address explicitly.
function toolEnv(home: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: home, LC_ALL: "C", TZ: "UTC" };
}

function chownTree(dir: string): void {
  const ids = postgresIds();
  if (!ids) return;
  fs.chownSync(dir, ids.uid, ids.gid);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) fs.chownSync(path.join(entry.parentPath, entry.name), ids.uid, ids.gid);
}

function run(home: string, bin: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(path.join(replicationBinaries!, bin), args, { ...postgresIds(), env: toolEnv(home), timeout: timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${bin} ${args.join(" ")} failed: ${error.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;
const quoteLiteral = (value: string) => `'${value.replaceAll("'", "''")}'`;

async function withClient<T>(server: Server, fn: (client: pg.Client) => Promise<T>, database = "postgres"): Promise<T> {
  const client = new pg.Client({ connectionString: server.url(database), connectionTimeoutMillis: 3000, statement_timeout: 10_000 });
  client.on("error", () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

async function query<R extends pg.QueryResultRow = Record<string, unknown>>(server: Server, sql: string, values?: unknown[]): Promise<R[]> {
  return withClient(server, async (client) => (await client.query<R>(sql, values)).rows);
}

// Settings a copy must not inherit: `synchronous_standby_names` would make a promoted copy wait
// forever for a standby of its own; a read-only flag from makeReadOnly would survive promotion.
function stripInherited(dataDir: string): void {
  const file = path.join(dataDir, "postgresql.auto.conf");
  if (!fs.existsSync(file)) return;
  const kept = fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => !/^\s*(synchronous_standby_names|default_transaction_read_only)\s*=/.test(line));
  fs.writeFileSync(file, kept.join("\n"));
}

// A standby's walreceiver reports cluster_name as its application_name (pg_basebackup -R
// names none), which is how pg_stat_replication on the primary tells the standbys apart.
function serverConfig(name: string, port: number, dir: string): string[] {
  return [`port = ${port}`, `unix_socket_directories = ${quoteLiteral(dir)}`, `cluster_name = ${quoteLiteral(name)}`];
}

function makeServer(baseDir: string, name: string, port: number): ServerHandle {
  const dir = path.join(baseDir, name);
  const dataDir = path.join(dir, "data");
  const logFile = path.join(dir, "postgres.log");
  const server: ServerHandle = {
    name,
    port,
    dataDir,
    dir,
    child: null,
    exited: Promise.resolve(),
    url: (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    running: () => !!server.child && server.child.exitCode === null && server.child.signalCode === null,
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : ""),
  };
  return server;
}

async function startServer(server: ServerHandle, baseDir: string, servers: ServerHandle[]): Promise<void> {
  const log = fs.openSync(path.join(server.dir, "postgres.log"), "a");
  const child = spawn(path.join(replicationBinaries!, "postgres"), ["-D", server.dataDir], { ...postgresIds(), env: toolEnv(baseDir), detached: true, stdio: ["ignore", log, log] });
  fs.closeSync(log);
  // The test process may end while servers run (the exit handler kills them).
  child.unref();
  server.child = child;
  servers.push(server);
  server.exited = new Promise((resolve) => child.once("exit", () => resolve()));
  live.add(server);
  void server.exited.then(() => live.delete(server));
  await eventually(
    async () => {
      if (!server.running()) throw new Error(`${server.name} exited at start:\n${server.log().slice(-3000)}`);
      await query(server, "select 1");
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 50, what: `${server.name} (port ${server.port}) to accept connections` },
  ).catch((error: Error) => {
    throw new Error(`${error.message}\n${server.log().slice(-3000)}`);
  });
}

async function stopServer(server: ServerHandle, baseDir: string): Promise<void> {
  if (!server.running()) return;
  // Unreferenced, its exit would not keep the event loop alive for us to await it.
  server.child!.ref();
  await run(baseDir, "pg_ctl", ["stop", "-D", server.dataDir, "-m", "immediate", "-w", "-t", "30"]).catch((error) => {
    // Already gone between the check and pg_ctl: nothing to stop.
    if (server.running()) throw error;
  });
  await server.exited;
}

// When the test process dies without running its exit handlers (SIGKILL, OOM), the kernel closes
// this pipe; the shell then kills the servers it finds in the folder and removes it. The
// postmaster check keeps a stale postmaster.pid from naming some other process.
function spawnWatchdog(baseDir: string): ChildProcess {
  const script = [
    "while read -r _; do :; done",
    'for f in "$1"/*/data/postmaster.pid; do',
    '  pid=$(head -n 1 "$f" 2>/dev/null) || continue',
    '  case "$(cat /proc/$pid/comm 2>/dev/null)" in postgres|postmaster) kill -9 -"$pid" "$pid" 2>/dev/null;; esac',
    "done",
    'rm -rf "$1"',
  ].join("\n");
  const child = spawn("sh", ["-c", script, "sps-repl-watchdog", baseDir], { detached: true, stdio: ["pipe", "ignore", "ignore"] });
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  child.stdin!.on("error", () => {});
  return child;
}

async function replicationState(primary: Server, name: string): Promise<{ state: string; sync_state: string } | undefined> {
  const rows = await query<{ state: string; sync_state: string }>(primary, "select state, sync_state from pg_stat_replication where application_name = $1", [name]);
  return rows[0];
}

export async function startReplicatedCluster(options: ReplicatedClusterOptions = {}): Promise<ReplicatedCluster> {
  if (!replicationBinaries) throw new Error("PostgreSQL server binaries not found (apt-get install postgresql-15, or set PG_REPLICATION_BINARIES)");
  const baseDir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-repl-"));
  baseDirs.add(baseDir);
  chownTree(baseDir);
  const watchdog = spawnWatchdog(baseDir);
  const servers: ServerHandle[] = [];
  let standbyCount = 0;

  const newServerDir = async (name: string) => {
    const server = makeServer(baseDir, name, await freePort());
    fs.mkdirSync(server.dir, { mode: 0o700 });
    chownTree(server.dir);
    return server;
  };

  const primary = await newServerDir("primary");
  const cluster: ReplicatedCluster = {
    primary,
    standbys: [],
    servers,

    async crashPrimary() {
      await stopServer(cluster.primary as ServerHandle, baseDir);
    },

    async promote(standby = cluster.standbys[0]) {
      if (!standby || !cluster.standbys.includes(standby)) throw new Error(`promote: ${standby ? `${standby.name} is not a standby` : "there is no standby"}`);
      const handle = standby as ServerHandle;
      await run(baseDir, "pg_ctl", ["promote", "-D", handle.dataDir, "-w", "-t", "60"]);
      const acceptedAt = await eventually(
        () =>
          withClient(handle, async (client) => {
            const { rows } = await client.query<{ recovery: boolean }>("select pg_is_in_recovery() as recovery");
            if (rows[0]!.recovery) return false;
            await client.query(`insert into ${PROBE_TABLE} (id, at) values (1, now()) on conflict (id) do update set at = excluded.at`);
            return Date.now();
          }),
        { timeoutMs: 30_000, intervalMs: 50, what: `${handle.name} to accept writes after promotion` },
      );
      const others = cluster.standbys.filter((server) => server !== standby);
      cluster.primary = handle;
      cluster.standbys = [];
      // recovery_target_timeline defaults to `latest`: a standby re-pointed by primary_conninfo
      // (reloadable since PostgreSQL 13) follows the timeline switch, when it has not replayed
      // past the point where the new primary's timeline forked.
      const followers = await Promise.all(
        others.map(async (other) => {
          if (!other.running()) return null;
          await query(other, `alter system set primary_conninfo = ${quoteLiteral(`host=127.0.0.1 port=${handle.port} user=postgres application_name=${other.name}`)}`);
          await query(other, "select pg_reload_conf()");
          const follows = await eventually(async () => (await replicationState(handle, other.name))?.state === "streaming", { timeoutMs: 15_000, what: `${other.name} to follow ${handle.name}` }).then(
            () => true,
            () => false,
          );
          return follows ? other : null;
        }),
      );
      cluster.standbys = followers.filter((server): server is Server => server !== null);
      return acceptedAt;
    },

    async makeReadOnly(server) {
      await query(server, "alter system set default_transaction_read_only = on");
      await query(server, "select pg_reload_conf()");
      await eventually(async () => (await query<{ value: string }>(server, "select current_setting('default_transaction_read_only') as value"))[0]?.value === "on", {
        what: `${server.name} to be read-only`,
      });
    },

    async addStandby(addOptions = {}) {
      const source = cluster.primary as ServerHandle;
      const standby = await newServerDir(`standby${++standbyCount}`);
      // --checkpoint=fast: the default spread checkpoint makes the copy wait minutes.
      await run(baseDir, "pg_basebackup", ["-h", "127.0.0.1", "-p", String(source.port), "-U", "postgres", "-D", standby.dataDir, "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"]);
      stripInherited(standby.dataDir);
      fs.appendFileSync(path.join(standby.dataDir, "postgresql.conf"), ["", ...serverConfig(standby.name, standby.port, standby.dir), ""].join("\n"));
      await startServer(standby, baseDir, servers);
      cluster.standbys.push(standby);
      if (addOptions.synchronous) {
        // Only now: a copy made after this would inherit it (stripInherited guards that too).
        await query(source, "alter system set synchronous_standby_names = '*'");
        await query(source, "select pg_reload_conf()");
      }
      await eventually(
        async () => {
          const state = await replicationState(source, standby.name);
          return state?.state === "streaming" && (!addOptions.synchronous || state.sync_state === "sync");
        },
        { timeoutMs: 30_000, what: `${standby.name} to stream from ${source.name}${addOptions.synchronous ? " synchronously" : ""}` },
      );
      return standby;
    },

    async caughtUp() {
      const lsn = (await query<{ lsn: string }>(cluster.primary, "select pg_current_wal_lsn()::text as lsn"))[0]!.lsn;
      await Promise.all(
        cluster.standbys.map((standby) =>
          eventually(async () => (await query<{ done: boolean }>(standby, "select pg_last_wal_replay_lsn() >= $1::pg_lsn as done", [lsn]))[0]?.done, {
            timeoutMs: 30_000,
            intervalMs: 50,
            what: `${standby.name} to replay up to ${lsn}`,
          }),
        ),
      );
    },

    async stop() {
      await Promise.all(servers.map((server) => stopServer(server, baseDir).catch(() => (server.child?.ref(), killGroup(server)))));
      await Promise.all(servers.map((server) => server.exited));
      fs.rmSync(baseDir, { recursive: true, force: true });
      baseDirs.delete(baseDir);
      watchdog.stdin!.end();
    },
  };

  try {
    await run(baseDir, "initdb", ["-D", primary.dataDir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"]);
    fs.appendFileSync(
      path.join(primary.dataDir, "postgresql.conf"),
      [
        "",
        ...serverConfig(primary.name, primary.port, primary.dir),
        "listen_addresses = '127.0.0.1'",
        `max_connections = ${options.maxConnections ?? 100}`,
        "shared_buffers = 16MB",
        "wal_level = replica",
        "max_wal_senders = 10",
        "max_replication_slots = 10",
        "hot_standby = on",
        // Speed over durability: nothing here outlives the test.
        "fsync = off",
        // Standbys copied late or lagging find the WAL they need without an archive.
        "wal_keep_size = '128MB'",
        // Standbys report replay positions promptly (caughtUp), and a standby whose primary went
        // away (or was re-pointed) retries after 0.5 s instead of 5 s.
        "wal_receiver_status_interval = '1s'",
        "wal_retrieve_retry_interval = '500ms'",
        "log_line_prefix = '%m [%p] %q%a '",
        "",
      ].join("\n"),
    );
    fs.writeFileSync(
      path.join(primary.dataDir, "pg_hba.conf"),
      ["local all all trust", "host all all 127.0.0.1/32 trust", "local replication all trust", "host replication all 127.0.0.1/32 trust", ""].join("\n"),
    );
    await startServer(primary, baseDir, servers);
    await query(primary, `create table ${PROBE_TABLE} (id int primary key, at timestamptz not null)`);
    for (const database of options.databases ?? []) await query(primary, `create database ${quoteIdent(database)}`);
    const count = options.standbys ?? 1;
    for (let i = 0; i < count; i++) await cluster.addStandby({ synchronous: options.synchronous === true && i === 0 });
  } catch (error) {
    await cluster.stop().catch(() => {});
    throw error;
  }
  return cluster;
}
