import { migrate } from "../../db/migrate.ts";
import type { Command } from "../command.ts";

export const migrateCommand: Command = {
  name: "migrate",
  summary: "apply pending database migrations (graphile-worker's and sql/) and exit",
  usage: "systemprompt-scheduler migrate\n\nSafe to run while nodes run, and from several places at once.",
  async run(ctx) {
    const { applied } = await migrate(await ctx.pool(), ctx.logger);
    ctx.print(applied.length > 0 ? `applied: ${applied.join(", ")}` : "database schema is up to date");
    return 0;
  },
};
