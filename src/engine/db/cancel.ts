import pg from "pg";

/**
 * Cancels the statement `client` is running, with PostgreSQL's cancel request (a new
 * connection sending the session's cancel key), as psql's Ctrl-C does. Unlike
 * `pg_cancel_backend(client.processID)` this also works through PgBouncer, where the key the
 * client knows is PgBouncer's, not the server process id. No-op when nothing runs.
 */
export function cancelRunningQuery(client: pg.ClientBase): void {
  const internals = client as unknown as { activeQuery?: unknown; host: string; port: number };
  if (!internals.activeQuery) return;
  const canceller = new pg.Client({ host: internals.host, port: internals.port });
  // pg's Client.cancel connects to the same server and sends the cancel key of `client`; the
  // server closes that connection itself.
  (canceller as unknown as { cancel(target: pg.ClientBase, query: unknown): void }).cancel(client, internals.activeQuery);
  (canceller as unknown as { connection: { on(event: string, fn: () => void): void } }).connection.on("error", () => {});
}
