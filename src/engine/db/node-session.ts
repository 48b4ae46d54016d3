import type pg from "pg";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import { backoffMs } from "./connection-errors.ts";
import type { Connector } from "./connector.ts";
import type { Queryable } from "./pool.ts";

// A node's own database session: one connection that stays open for as long as the node
// runs. It carries what must live on one session of its own: the node's liveness lock (taken
// again on each new session), its heartbeat, and every LISTEN the node needs (graphile-
// worker's new-job notifications, the packs' channels), so an idle node holds this one
// connection and pooled ones only while it works. When the connection breaks, or its server
// turns read-only, the session connects again through the connector (the next suitable
// host), takes its lock, listens again and tells those who listened.

export interface NodeSession {
  /** The connected client, once connected (waits through a reconnect); rejects once closed. */
  client(): Promise<pg.Client>;
  /** The connected client, or null while (re)connecting. */
  current(): pg.Client | null;
  /** LISTEN on `channel` on every session from now on; `onReconnect` after each new session (notifications may have been missed). */
  listen(channel: string, onNotification: (payload: string) => void, onReconnect?: () => void): Promise<() => Promise<void>>;
  /** Drops the connection (a failed statement) and connects again. */
  reconnect(reason: unknown): void;
  close(): Promise<void>;
}

export interface NodeSessionOptions {
  connector: Connector;
  applicationName: string;
  /** Connect timeout and pg's query_timeout: a statement that hangs fails. */
  timeoutMs: number;
  /** Longest wait between connection attempts. */
  retryCapMs: number;
  logger: Logger;
  /** Runs on each new connection before it is used (takes the liveness lock); a throw drops it. */
  prepare(client: pg.Client): Promise<void>;
  /** The session was lost (error, end, read-only server); it is reconnecting. */
  onLost?(error: unknown): void;
  /** A connection attempt failed. */
  onConnectFailed?(error: unknown, attempt: number): void;
  /** A new session is ready (after a loss, or the first). */
  onConnected?(client: pg.Client): void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A channel name as a quoted identifier. */
function channelIdentifier(channel: string): string {
  return `"${channel.replaceAll('"', '""')}"`;
}

export function startNodeSession(options: NodeSessionOptions): NodeSession {
  const { connector, logger } = options;
  const channels = new Map<string, { onNotification(payload: string): void; onReconnect?(): void }>();
  let client: pg.Client | null = null;
  let closed = false;
  let connecting: Promise<pg.Client> | null = null;
  let everConnected = false;

  const dispatch = (message: pg.Notification) => {
    channels.get(message.channel)?.onNotification(message.payload ?? "");
  };

  function lost(which: pg.Client, error: unknown): void {
    if (client !== which) return;
    client = null;
    // Those who hold the client (graphile-worker's listener) learn it through its 'error'.
    if (which.listenerCount("error") > 1) which.emit("error", error instanceof Error ? error : new Error(String(error)));
    which.end().catch(() => {});
    if (closed) return;
    options.onLost?.(error);
    void ensureConnected().catch(() => {}); // rejects only once closed
  }

  async function connectOnce(): Promise<pg.Client> {
    const fresh = await connector.connect({ applicationName: options.applicationName, connectionTimeoutMillis: options.timeoutMs, queryTimeoutMillis: options.timeoutMs });
    try {
      await options.prepare(fresh);
      for (const channel of channels.keys()) await fresh.query(`listen ${channelIdentifier(channel)}`);
    } catch (error) {
      await fresh.end().catch(() => {});
      throw error;
    }
    fresh.on("error", (error) => lost(fresh, error));
    fresh.on("end", () => lost(fresh, new Error("the node's database session ended")));
    fresh.on("notification", dispatch);
    return fresh;
  }

  function ensureConnected(): Promise<pg.Client> {
    if (client) return Promise.resolve(client);
    connecting ??= (async () => {
      for (let attempt = 0; ; attempt++) {
        if (closed) throw new Error("the node's database session is closed");
        try {
          const fresh = await connectOnce();
          if (closed) {
            await fresh.end().catch(() => {});
            throw new Error("the node's database session is closed");
          }
          client = fresh;
          const reconnected = everConnected;
          everConnected = true;
          options.onConnected?.(fresh);
          if (reconnected) for (const channel of channels.values()) channel.onReconnect?.();
          return fresh;
        } catch (error) {
          if (closed) throw error;
          options.onConnectFailed?.(error, attempt);
          await sleep(backoffMs(attempt, options.retryCapMs));
        }
      }
    })().finally(() => (connecting = null));
    return connecting;
  }

  // A server that turned read-only keeps our session open: leave it for the next primary.
  const unsubscribe = connector.onReadOnly(() => {
    if (client && connector.isStale(client)) lost(client, new Error("the database server turned read-only"));
  });

  void ensureConnected().catch(() => {});

  return {
    client: ensureConnected,
    current: () => client,
    async listen(channel, onNotification, onReconnect) {
      channels.set(channel, { onNotification, onReconnect });
      const current = await ensureConnected();
      await current.query(`listen ${channelIdentifier(channel)}`);
      return async () => {
        channels.delete(channel);
        await client?.query(`unlisten ${channelIdentifier(channel)}`).catch((error: unknown) => logger.debug({ error: errorMessage(error), channel }, "unlisten failed"));
      };
    },
    reconnect(reason) {
      if (client) lost(client, reason);
    },
    async close() {
      closed = true;
      unsubscribe();
      await connecting?.catch(() => {});
      const last = client;
      client = null;
      await last?.end().catch(() => {});
    },
  };
}

/**
 * Statements on the node's session while it is connected (they fail while it reconnects):
 * for the node's own short bookkeeping, so that an idle node needs no pooled connection.
 */
export function sessionQueries(session: NodeSession): Queryable {
  return {
    query(text, values) {
      const client = session.current();
      if (!client) return Promise.reject(new Error("the node's database session is reconnecting"));
      return client.query(text, values);
    },
  };
}
