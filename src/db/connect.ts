import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { startEmbeddedPostgres } from "./embedded.ts";
import { waitForDatabase } from "./pool.ts";

export interface DatabaseTarget {
  connectionString: string;
  /** Stops the embedded server if this process started it; otherwise does nothing. */
  release(): Promise<void>;
  embedded: boolean;
}

/** DATABASE_URL when set; otherwise the embedded server in SCHEDULER_DATA_DIR. */
export async function resolveDatabase(config: Config, logger: Logger): Promise<DatabaseTarget> {
  if (config.DATABASE_URL) {
    await waitForDatabase(config.DATABASE_URL, { logger });
    return { connectionString: config.DATABASE_URL, release: async () => {}, embedded: false };
  }
  const server = await startEmbeddedPostgres({ dataDir: config.SCHEDULER_DATA_DIR, port: config.SCHEDULER_EMBEDDED_PORT, logger });
  await waitForDatabase(server.connectionString, { logger });
  return { connectionString: server.connectionString, release: () => server.stop(), embedded: true };
}
