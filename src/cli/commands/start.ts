import { resolveDatabase } from "../../db/connect.ts";
import { startScheduler } from "../../runner/start.ts";
import type { Command } from "../command.ts";

export const startCommand: Command = {
  name: "start",
  summary: "run a scheduler node (migrations, worker, crontab, node loops) until SIGTERM/SIGINT",
  usage: `systemprompt-scheduler start

Runs this node until it receives SIGTERM or SIGINT, then lets running jobs finish
(at most SCHEDULER_SHUTDOWN_GRACE_MS) and stops. A second signal stops at once.
Without DATABASE_URL an embedded PostgreSQL in SCHEDULER_DATA_DIR is started (and stopped last).`,
  async run(ctx) {
    const database = await resolveDatabase(ctx.config, ctx.logger);
    let scheduler;
    try {
      scheduler = await startScheduler({ connectionString: database.connectionString, logger: ctx.logger });
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
