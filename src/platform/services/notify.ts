// "Reconcile now" over LISTEN/NOTIFY. Requests: NOTIFY scheduler_services with a host name
// (or {"host", "requestId"} as JSON, which the CLI sends to get an answer). Answers: NOTIFY
// scheduler_services_result with {host, requestId, result}. On a node the listener is the
// node's own session; alone (tests, tools) it has its own connection and reconnects with a
// growing delay if it drops.
import pg from "pg";
import type { Pool, PoolClient } from "../../engine/db/pool.ts";
import type { Logger } from "../../engine/log.ts";
import type { SessionListen } from "../../engine/pack.ts";
import type { PassResult } from "./types.ts";

export const REQUEST_CHANNEL = "scheduler_services";
export const RESULT_CHANNEL = "scheduler_services_result";

export interface ReconcileRequest {
  host: string;
  requestId: string | null;
}

export function parseRequest(payload: string): ReconcileRequest | null {
  const text = payload.trim();
  if (!text.startsWith("{")) return text ? { host: text, requestId: null } : null;
  try {
    const value = JSON.parse(text) as { host?: unknown; requestId?: unknown };
    if (typeof value.host !== "string" || !value.host) return null;
    return { host: value.host, requestId: typeof value.requestId === "string" ? value.requestId : null };
  } catch {
    return null;
  }
}

/** The answer to a request; the failure list is cut so the payload stays under NOTIFY's 8000 bytes. */
export function formatReply(requestId: string, result: PassResult): string {
  const reply = { host: result.host, requestId, result: { ...result, actions: result.actions.slice(0, 40) } };
  let text = JSON.stringify(reply);
  while (Buffer.byteLength(text) > 7800 && (reply.result.failed.length > 0 || reply.result.actions.length > 0)) {
    reply.result.actions = reply.result.actions.slice(0, Math.floor(reply.result.actions.length / 2));
    reply.result.failed = reply.result.failed.slice(0, Math.floor(reply.result.failed.length / 2)).map((failure) => ({ ...failure, error: failure.error.slice(0, 300) }));
    text = JSON.stringify(reply);
  }
  return text;
}

export interface Listener {
  /** Settles once LISTEN is active for the first time (or `close` was called). */
  ready: Promise<void>;
  close(): Promise<void>;
}

export interface ListenOptions {
  pool: Pool;
  /** A dedicated connection is opened from this; without it one pool connection is kept. */
  connectionString?: string | undefined;
  channel: string;
  logger: Logger;
  onNotification(payload: string): void;
  /** Called after a dropped connection is back: notifications may have been missed meanwhile. */
  onReconnect(): void;
}

/** The same, on the node's own session (which reconnects, and listens again, by itself). */
export function listenOnSession(sessionListen: SessionListen, options: ListenOptions): Listener {
  let closed = false;
  let unlisten: (() => Promise<void>) | null = null;
  const ready = sessionListen(options.channel, (payload) => !closed && options.onNotification(payload), () => !closed && options.onReconnect()).then(
    (stop) => {
      if (closed) void stop();
      else unlisten = stop;
    },
    (error: unknown) => options.logger.warn({ err: error }, "the services listener could not listen on the node's session"),
  );
  return {
    ready,
    async close() {
      closed = true;
      await unlisten?.();
    },
  };
}

export function listen(options: ListenOptions): Listener {
  const connectionString = options.connectionString ?? options.pool.options.connectionString;
  let closed = false;
  let client: pg.Client | PoolClient | null = null;
  let dedicated = false;
  let retryMs = 500;
  let timer: NodeJS.Timeout | null = null;
  let everConnected = false;
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));

  const drop = (why: unknown) => {
    const lost = client;
    client = null;
    if (lost) {
      if (dedicated) (lost as pg.Client).end().catch(() => {});
      else (lost as PoolClient).release(true);
    }
    if (closed) return;
    options.logger.warn({ err: why, retryInMs: retryMs }, "the services listener lost its database connection; reconnecting");
    schedule();
  };

  const schedule = () => {
    if (closed || timer) return;
    timer = setTimeout(() => {
      timer = null;
      void connect();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 30_000);
  };

  const connect = async () => {
    if (closed) return;
    let candidate: pg.Client | PoolClient | null = null;
    const ownConnection = Boolean(connectionString);
    try {
      if (ownConnection) {
        const fresh = new pg.Client({ connectionString, keepAlive: true, connectionTimeoutMillis: 10_000, application_name: "systemprompt-scheduler services listener" });
        fresh.on("error", () => {}); // replaced below once connected
        candidate = fresh;
        await fresh.connect();
      } else {
        candidate = await options.pool.connect();
      }
      const current = candidate;
      current.removeAllListeners("error");
      current.on("error", (error: Error) => client === current && drop(error));
      if (ownConnection) (current as pg.Client).on("end", () => client === current && drop(new Error("connection ended")));
      current.on("notification", (message) => {
        if (message.channel === options.channel) options.onNotification(message.payload ?? "");
      });
      await current.query(`listen ${options.channel}`);
      if (closed) {
        if (ownConnection) await (current as pg.Client).end().catch(() => {});
        else (current as PoolClient).release();
        return;
      }
      client = current;
      dedicated = ownConnection;
      retryMs = 500;
      if (everConnected) options.onReconnect();
      everConnected = true;
      markReady();
    } catch (error) {
      if (candidate) {
        if (ownConnection) await (candidate as pg.Client).end().catch(() => {});
        else (candidate as PoolClient).release(true);
      }
      if (!closed) {
        options.logger.warn({ err: error, retryInMs: retryMs }, "the services listener cannot connect; retrying");
        schedule();
      }
    }
  };

  void connect();

  return {
    ready,
    async close() {
      closed = true;
      markReady();
      if (timer) clearTimeout(timer);
      const current = client;
      client = null;
      if (!current) return;
      // a connection the server is dropping at this moment may never confirm the end
      if (dedicated) await Promise.race([(current as pg.Client).end().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      else {
        await current.query(`unlisten ${options.channel}`).catch(() => {});
        (current as PoolClient).release();
      }
    },
  };
}
