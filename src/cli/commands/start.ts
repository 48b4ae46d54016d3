import { cliActor } from "../../engine/audit/actor.ts";
import { resolveDatabase, type DatabaseTarget } from "../../engine/db/connect.ts";
import { maskPassword } from "../../engine/db/pool.ts";
import type { SchedulerHandle } from "../../engine/runner/options.ts";
import { launchScheduler } from "../../engine/runner/start.ts";
import { prepareScheduler } from "../../scheduler.ts";
import type { Command } from "../command.ts";
import { listenForShutdown } from "../shutdown.ts";

export const startCommand: Command = {
  name: "start",
  summary: "run a scheduler node (migrations, worker, crontab, node loops) until SIGTERM/SIGINT/SIGHUP",
  usage: `systemprompt-scheduler start

Checks the configuration, the task files and the whole crontab first (exit 2 on any problem,
before any database is touched), then runs this node until it receives SIGTERM, SIGINT or
SIGHUP, or its parent process exits. It then takes no new jobs, lets running ones finish (at
most SCHEDULER_SHUTDOWN_GRACE_MS; then their SQL is cancelled and they are retried), closes
their history rows, marks the node stopped and stops the embedded database last. A second
signal cuts the grace period to zero and does all of that at once (exit 128 + its number).
Without DATABASE_URL an embedded PostgreSQL in SCHEDULER_DATA_DIR is started (or a leftover
one adopted), and stops with the node even if the node is killed.`,
  async run(ctx) {
    // Listening from the first moment: a signal during start-up unwinds what has started.
    const shutdown = listenForShutdown(ctx.logger);
    let database: DatabaseTarget | undefined;
    let scheduler: SchedulerHandle | undefined;
    let exitCode = 0;
    try {
      // A node started from the CLI serves its dashboard and /metrics (127.0.0.1:9464 unless SCHEDULER_HTTP_ADDR says otherwise).
      const prepared = await prepareScheduler({ logger: ctx.logger, platform: ctx.config.SCHEDULER_PLATFORM, http: true, actor: cliActor() });
      if (shutdown.isRequested()) return shutdown.exitCode();
      database = await resolveDatabase(ctx.config, ctx.logger, { role: "node", writes: "a node", primaryTimeoutMs: ctx.config.SCHEDULER_DB_GIVE_UP_MS });
      // Passwords stay out of logs; `db url` prints the URL with it.
      ctx.logger.info(
        { url: maskPassword(database.connectionString), ...(database.embedded ? { withPassword: "systemprompt-scheduler db url" } : {}) },
        database.embedded ? "embedded PostgreSQL is up" : "connecting to PostgreSQL",
      );
      if (shutdown.isRequested()) return shutdown.exitCode();
      scheduler = await launchScheduler({ ...prepared, options: { ...prepared.options, connectionString: database.connectionString } });
      const running = scheduler;
      shutdown.onHurry(() => void running.stop({ hurry: true }));
      await Promise.race([running.done.catch(() => (exitCode = 1)), new Promise<void>((resolve) => running.events.once("stopped", resolve)), shutdown.requested]);
      await running.stop();
      return exitCode || shutdown.exitCode();
    } finally {
      await database?.release();
      shutdown.dispose();
    }
  },
};
