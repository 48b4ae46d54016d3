import { isReadOnlyError } from "../db/server-role.ts";
import { errorMessage, SchedulerError } from "../errors.ts";
import type { Logger } from "../log.ts";

// What a node knows about its database connection: the heartbeat connection is the judge
// (it is dedicated and always open), the pool's waiting connects report to it, and when the
// database has been gone for longer than the give-up time every waiting connect fails and
// the node stops with a clear error instead of waiting forever.

export class DatabaseHealth {
  /** Since when the heartbeat has failed without a success in between; null when healthy. */
  downSince: number | null = null;
  /** Since when the heartbeat connection has been answering without interruption. */
  healthySince: number;
  lastError: unknown = null;
  givenUp: SchedulerError | null = null;
  /** Set when the node starts shutting down: connects stop waiting for the database. */
  stopping = false;
  private poolWaiting = false;
  private readonly target: string;
  private readonly logger: Logger;
  private readonly giveUpMs: number;
  private readonly onGiveUp: (error: SchedulerError) => void;

  constructor(options: { connectionTarget: string; logger: Logger; giveUpMs: number; startedHealthySince: number; onGiveUp(error: SchedulerError): void }) {
    this.target = options.connectionTarget;
    this.logger = options.logger;
    this.giveUpMs = options.giveUpMs;
    this.onGiveUp = options.onGiveUp;
    this.healthySince = options.startedHealthySince;
  }

  /** The heartbeat reached the database. */
  up(): void {
    if (this.downSince !== null) {
      this.logger.info({ downMs: Date.now() - this.downSince }, "database connection restored");
      this.downSince = null;
      this.healthySince = Date.now();
    }
    this.lastError = null;
  }

  /** The heartbeat failed; gives up when the database has been gone for too long. */
  down(error: unknown): void {
    this.lastError = error;
    if (this.downSince === null) {
      this.downSince = Date.now();
      // A read-only server: the connector has said so, once for the episode (db/connector.ts).
      if (isReadOnlyError(error)) return;
      this.logger.warn(
        { error: errorMessage(error), giveUpAfterMs: this.giveUpMs },
        `lost the database connection (${this.target}); reconnecting with back-off, running jobs wait for it`,
      );
      return;
    }
    const downMs = Date.now() - this.downSince;
    if (downMs >= this.giveUpMs && !this.givenUp) {
      const readOnly = isReadOnlyError(error);
      this.givenUp = new SchedulerError(
        readOnly ? "no_primary" : "database_lost",
        readOnly
          ? `no primary at ${this.target} for ${Math.round(downMs / 1000)} s (last: ${errorMessage(error)}); this node stops`
          : `no answer from PostgreSQL at ${this.target} for ${Math.round(downMs / 1000)} s (last error: ${errorMessage(error)}); this node stops`,
        {
          hint: readOnly
            ? "promote a standby (or let the HA manager finish its failover), or list the primary in DATABASE_URL; raise SCHEDULER_DB_GIVE_UP_MS to wait longer; a supervisor (systemd, Kubernetes) restarts the node"
            : "start PostgreSQL or fix DATABASE_URL; raise SCHEDULER_DB_GIVE_UP_MS to wait longer; a supervisor (systemd, Kubernetes) restarts the node",
          exitCode: 1,
        },
      );
      this.logger.fatal({ error: errorMessage(error), downMs }, this.givenUp.describe());
      this.onGiveUp(this.givenUp);
    }
  }

  /** Called by the pool while a connect waits for the database or for a free slot. */
  poolConnectFailed(error: unknown): void {
    if (!this.poolWaiting) {
      this.poolWaiting = true;
      if (isReadOnlyError(error)) this.logger.warn({ error: errorMessage(error) }, "waiting for a database connection to a server that takes writes; retrying with back-off");
      else this.logger.warn({ error: errorMessage(error) }, "waiting for a database connection (the server refuses or the pool is full); retrying with back-off");
    }
  }

  poolConnected(): void {
    if (this.poolWaiting) {
      this.poolWaiting = false;
      this.logger.info("database connections available again");
    }
  }

  /** How long the database has been reachable without interruption, in ms (0 while down). */
  connectedForMs(): number {
    return this.downSince === null ? Date.now() - this.healthySince : 0;
  }
}
