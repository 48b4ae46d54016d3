import { resolveDatabase } from "../../db/connect.ts";
import { maskPassword } from "../../db/pool.ts";
import { prepareScheduler } from "../../runner/prepare.ts";
import { launchScheduler } from "../../runner/start.ts";
import type { Command } from "../command.ts";

export const startCommand: Command = {
  name: "start",
  summary: "run a scheduler node (migrations, worker, crontab, node loops) until SIGTERM/SIGINT",
  usage: `systemprompt-scheduler start

Checks the configuration, the task files and the whole crontab first (exit 2 on any problem,
before any database is touched), then runs this node until it receives SIGTERM or SIGINT,
lets running jobs finish (at most SCHEDULER_SHUTDOWN_GRACE_MS) and stops. A second signal
stops at once. Without DATABASE_URL an embedded PostgreSQL in SCHEDULER_DATA_DIR is started
(and stopped last); its connection string is logged once it is up.`,
  async run(ctx) {
    const prepared = await prepareScheduler({ logger: ctx.logger });
    const database = await resolveDatabase(ctx.config, ctx.logger);
    // The embedded server's password is a fixed local one (loopback only): shown, so a person can connect.
    ctx.logger.info({ url: database.embedded ? database.connectionString : maskPassword(database.connectionString) }, database.embedded ? "embedded PostgreSQL is up" : "connecting to PostgreSQL");
    let scheduler;
    try {
      scheduler = await launchScheduler({ ...prepared, options: { ...prepared.options, connectionString: database.connectionString } });
    } catch (error) {
      await database.release();
      throw error;
    }
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals > 1) {
        ctx.logger.warn({ signal }, "second signal: exiting now");
        process.exit(130);
      }
      ctx.logger.info({ signal }, "shutdown requested");
      void scheduler.stop();
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    let exitCode = 0;
    await Promise.race([scheduler.done.catch(() => (exitCode = 1)), new Promise<void>((resolve) => scheduler.events.once("stopped", resolve))]);
    await scheduler.stop();
    await database.release();
    return exitCode;
  },
};
