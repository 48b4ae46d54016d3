import pg from "pg";
import type { Logger } from "../log.ts";
import { isPermanentConnectError } from "./connection-errors.ts";
import { SchedulerError } from "../errors.ts";
import { ConnectionStringError, describeSpec, parseConnectionString, urlForHost, type ConnectionSpec, type HostAddress, type TargetSessionAttrs } from "./connection-string.ts";
import { mismatch, readServerState, ServerRoleError, stateFromStatuses } from "./server-role.ts";

/** A read-only episode within this long of the last one's end is the same failover settling. */
const SETTLING_MS = 30_000;

// The one place a connection to PostgreSQL is made: the node's pool, its session (liveness
// lock, heartbeat, every LISTEN) and the CLI's pool all get their clients here. It reads
// libpq connection strings with several hosts, tries them in order as libpq does, and keeps a
// connection only on a server that suits it (a node needs one that takes writes). When a
// statement finds its server read-only (a standby, or a primary demoted while our sessions
// stayed open), every connection made until then is stale: owners discard them instead of
// reusing them, and new ones go to the next suitable server (the next host, or the same
// address once a pooler or a DNS name points elsewhere). One warning per such episode.

export interface ConnectOptions {
  applicationName?: string;
  connectionTimeoutMillis?: number;
  /** pg's query_timeout for every statement on this client. */
  queryTimeoutMillis?: number;
}

export interface Connector {
  readonly spec: ConnectionSpec;
  /** The connection string it was made from (undefined: from an application's client config). */
  readonly connectionString: string | undefined;
  /** What a server must be for these connections (libpq's target_session_attrs). */
  readonly requirement: TargetSessionAttrs;
  /** The hosts and database, for messages: "h1:5432,h2:5432/platform". */
  readonly target: string;
  /** For pg.Pool's `Client` option: each client goes to the server in use, and is checked. */
  readonly Client: new (config?: pg.ClientConfig) => pg.Client;
  /** A client of its own on the first suitable host, every host tried in order. */
  connect(options?: ConnectOptions): Promise<pg.Client>;
  /** A statement on `client` found its server read-only: what was connected until now is stale. */
  readOnly(client: pg.ClientBase | null, error: unknown): void;
  /** Made before the last read-only episode: discard it, do not reuse it. */
  isStale(client: pg.ClientBase): boolean;
  /** "h1:5432" of a client this connector made. */
  hostOf(client: pg.ClientBase): string | null;
  /** Called at the start of each read-only episode (after the warning). */
  onReadOnly(listener: () => void): () => void;
  /** A connector to the same servers for connections that need `requirement`. */
  withRequirement(requirement: TargetSessionAttrs, logger?: Logger): Connector;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** A host that failed is tried after the others for this long (libpq would wait on it each time). */
const FAILED_HOST_DEFER_MS = 10_000;
/** Idle TCP keepalive probes start after this long, so a dead peer is found without a statement. */
const KEEPALIVE_DELAY_MS = 10_000;

const HOST = Symbol("systemprompt-scheduler.host");
const WANTED = Symbol("systemprompt-scheduler.wanted");

type ClientConfig = pg.ClientConfig & { [HOST]?: HostAddress; [WANTED]?: TargetSessionAttrs };

export function hostLabel(host: HostAddress): string {
  return host.host.includes(":") ? `[${host.host}]:${host.port}` : `${host.host}:${host.port}`;
}

/**
 * `requirement`: overrides the connection string's target_session_attrs (a node always needs
 * a server that takes writes); otherwise the string's, "any" by default.
 */
export function createConnector(
  connection: string | pg.ClientConfig,
  options: { requirement?: TargetSessionAttrs; logger?: Logger; label?: string } = {},
): Connector {
  // An application's pool gives its client config rather than a string: one host, as given.
  const given = typeof connection === "string" ? null : connection;
  const connectionString = typeof connection === "string" ? connection : connection.connectionString;
  const spec: ConnectionSpec = connectionString
    ? readConnectionString(connectionString, options.label)
    : { hosts: [{ host: given?.host ?? "localhost", port: Number(given?.port ?? 5432) }], database: given?.database, user: given?.user, targetSessionAttrs: "any", params: {} };
  const requirement = options.requirement ?? spec.targetSessionAttrs;
  const target = describeSpec(spec);
  const logger = options.logger;
  const failedUntil = new Map<string, number>();
  const listeners = new Set<() => void>();
  const generations = new WeakMap<pg.ClientBase, number>();
  const hosts = new WeakMap<pg.ClientBase, HostAddress>();
  let generation = 0;
  let preferred: HostAddress | null = null;
  let episode: { since: number; host: string } | null = null;
  // When the last episode ended: one soon after is the same failover still settling (a pooler
  // handing out a server connection to the old primary), said at debug, not warned again.
  let episodeEndedAt = -Infinity;
  const keepalive = spec.params.keepalives !== "0";

  const hostOrder = (): HostAddress[] => {
    const now = Date.now();
    const deferred = (host: HostAddress) => (failedUntil.get(hostLabel(host)) ?? 0) > now;
    return [...spec.hosts.filter((host) => !deferred(host)), ...spec.hosts.filter(deferred)];
  };

  const configFor = (host: HostAddress, base: pg.ClientConfig): pg.ClientConfig => {
    const { connectionString: _ignored, host: _h, port: _p, ...rest } = base;
    if (given && !connectionString) return { ...given, ...rest, host: host.host, port: host.port, keepAlive: keepalive, keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS };
    const params = { ...spec.params };
    // The node names its sessions itself (rescue finds a dead node's sessions by that name).
    if (base.application_name) delete params.application_name;
    const connectTimeout = spec.params.connect_timeout ? Number(spec.params.connect_timeout) * 1000 : undefined;
    const { connectionString: _s, host: _gh, port: _gp, ...fromApplication } = given ?? {};
    return {
      connectionTimeoutMillis: connectTimeout || DEFAULT_CONNECT_TIMEOUT_MS,
      ...fromApplication,
      ...rest,
      connectionString: urlForHost({ ...spec, params }, host),
      keepAlive: keepalive,
      keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    };
  };

  function accepted(client: pg.ClientBase, host: HostAddress): void {
    failedUntil.delete(hostLabel(host));
    preferred = host;
    if (episode) {
      const settling = episode.since - episodeEndedAt < SETTLING_MS;
      logger?.[settling ? "debug" : "info"]({ host: hostLabel(host), readOnlyForMs: Date.now() - episode.since }, `connected to a server that takes writes at ${hostLabel(host)}; the read-only episode is over`);
      episode = null;
      episodeEndedAt = Date.now();
    }
    generations.set(client, generation);
    hosts.set(client, host);
  }

  function failed(host: HostAddress): void {
    failedUntil.set(hostLabel(host), Date.now() + FAILED_HOST_DEFER_MS);
    if (preferred === host) preferred = null;
  }

  function readOnly(client: pg.ClientBase | null, error: unknown): void {
    if (client && (generations.get(client) ?? generation) < generation) return; // this episode is known
    const host = client ? hosts.get(client) : preferred;
    if (host) failed(host);
    preferred = null;
    generation += 1;
    if (!episode) {
      const where = host ? hostLabel(host) : target;
      episode = { since: Date.now(), host: where };
      const reason = error instanceof ServerRoleError ? error.problem : "refuses writes (a standby or a demoted primary)";
      const settling = episode.since - episodeEndedAt < SETTLING_MS;
      logger?.[settling ? "debug" : "warn"]({ host: where, error: error instanceof Error ? error.message : String(error) }, `database at ${where} ${reason}; reconnecting to the primary`);
    }
    for (const listener of listeners) listener();
  }

  class ConnectorClient extends pg.Client {
    readonly statuses = new Map<string, string>();
    readonly #host: HostAddress;
    readonly #wanted: TargetSessionAttrs;
    #checked = false;

    constructor(config: ClientConfig = {}) {
      const host = config[HOST] ?? preferred ?? hostOrder()[0]!;
      super(configFor(host, config));
      this.#host = host;
      this.#wanted = config[WANTED] ?? requirement;
      (this as unknown as { connection: NodeJS.EventEmitter }).connection.on("parameterStatus", (message: { parameterName: string; parameterValue: string }) => {
        this.statuses.set(message.parameterName, message.parameterValue);
        // A server reports a change of these while our session lives (a reload that made
        // it read-only): stale at once, before a write fails.
        if (!this.#checked || (message.parameterName !== "default_transaction_read_only" && message.parameterName !== "in_hot_standby")) return;
        const state = stateFromStatuses(this.statuses);
        const problem = state && mismatch(this.#wanted, state);
        if (problem) readOnly(this, new ServerRoleError(hostLabel(this.#host), problem));
      });
    }

    override connect(): Promise<this>;
    override connect(callback: (error: Error) => void): void;
    override connect(callback?: (error: Error) => void): Promise<this> | void {
      const connecting = this.#connectAndCheck();
      if (!callback) return connecting;
      connecting.then(
        () => callback(undefined as unknown as Error),
        (error: Error) => callback(error),
      );
    }

    async #connectAndCheck(): Promise<this> {
      try {
        await super.connect();
      } catch (error) {
        failed(this.#host);
        throw error;
      }
      if (this.#wanted !== "any") {
        let problem: string | null;
        try {
          problem = mismatch(this.#wanted, await readServerState(this, this.statuses));
        } catch (error) {
          failed(this.#host);
          await this.end().catch(() => {});
          throw error;
        }
        if (problem) {
          await this.end().catch(() => {});
          const error = new ServerRoleError(hostLabel(this.#host), problem);
          // The server in use turned read-only: what is connected to it is stale too.
          if (preferred && hostLabel(preferred) === hostLabel(this.#host)) readOnly(null, error);
          else failed(this.#host);
          throw error;
        }
      }
      this.#checked = true;
      accepted(this, this.#host);
      return this;
    }
  }

  async function connect(connectOptions: ConnectOptions = {}): Promise<pg.Client> {
    const base: pg.ClientConfig = {
      ...(connectOptions.applicationName ? { application_name: connectOptions.applicationName } : {}),
      ...(connectOptions.connectionTimeoutMillis ? { connectionTimeoutMillis: connectOptions.connectionTimeoutMillis } : {}),
      ...(connectOptions.queryTimeoutMillis ? { query_timeout: connectOptions.queryTimeoutMillis } : {}),
    };
    // libpq: prefer-standby tries every host for a standby first, then takes any.
    const passes: TargetSessionAttrs[] = requirement === "prefer-standby" ? ["standby", "any"] : [requirement];
    const problems: string[] = [];
    let lastError: unknown;
    let onlyRoles = true;
    for (const wanted of passes) {
      for (const host of hostOrder()) {
        const client = new ConnectorClient({ ...base, [HOST]: host, [WANTED]: wanted });
        // A failed connect also emits; the caller adds its own listener to a connected client.
        client.on("error", () => {});
        try {
          await client.connect();
          return client;
        } catch (error) {
          lastError = error;
          // bad password, unknown role or database: every host would say the same
          if (isPermanentConnectError(error)) throw error;
          if (error instanceof ServerRoleError) problems.push(`${error.target} ${error.problem}`);
          else {
            onlyRoles = false;
            problems.push(`${hostLabel(host)} unreachable (${error instanceof Error ? error.message : String(error)})`);
          }
        }
      }
    }
    // One host, one pass: its own error, as pg reports it.
    if (spec.hosts.length === 1 && passes.length === 1) throw lastError;
    throw new NoServerError(`no ${wantedWord(requirement)} among ${spec.hosts.length} host(s): ${problems.join("; ")}`, onlyRoles, lastError);
  }

  return {
    spec,
    connectionString,
    requirement,
    target,
    Client: ConnectorClient,
    connect,
    readOnly,
    isStale: (client) => (generations.get(client) ?? generation) < generation,
    hostOf: (client) => {
      const host = hosts.get(client);
      return host ? hostLabel(host) : null;
    },
    onReadOnly(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    withRequirement: (wanted, newLogger) => createConnector(connection, { ...options, requirement: wanted, logger: newLogger ?? logger }),
  };
}

/** A connection string that cannot be read is refused like any bad setting: exit 2, what is wrong in it. */
function readConnectionString(text: string, label: string | undefined): ConnectionSpec {
  try {
    return parseConnectionString(text, { label });
  } catch (error) {
    if (!(error instanceof ConnectionStringError)) throw error;
    throw new SchedulerError("invalid_config", error.message, {
      hint: "write it as libpq does: postgres://user:password@host1:5432,host2:5432/database?target_session_attrs=read-write, or host=host1,host2 dbname=database",
      exitCode: 2,
      cause: error,
    });
  }
}

/** Every host was tried; none suited. A read-only error when each answered (so callers wait for a primary). */
export class NoServerError extends Error {
  readonly code: string | undefined;
  constructor(message: string, onlyRoles: boolean, cause: unknown) {
    super(message, { cause });
    this.name = "NoServerError";
    // Classified like its last cause: unreachable hosts are a connection error, standbys a read-only one.
    this.code = onlyRoles ? "25006" : ((cause as { code?: string } | null)?.code ?? "08001");
  }
}

export function wantedWord(requirement: TargetSessionAttrs): string {
  switch (requirement) {
    case "read-write":
    case "primary":
      return "primary";
    case "read-only":
      return "read-only server";
    case "standby":
      return "standby";
    default:
      return "server";
  }
}


