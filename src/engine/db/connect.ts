import type { EngineConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { startEmbeddedPostgres } from "./embedded/index.ts";
import type { OwnerRole } from "./embedded/owner.ts";
import { waitForDatabase } from "./pool.ts";

export interface DatabaseTarget {
  connectionString: string;
  /** Stops the embedded server if this process started it; otherwise does nothing. */
  release(): Promise<void>;
  embedded: boolean;
}

/**
 * DATABASE_URL when set; otherwise the embedded server in SCHEDULER_DATA_DIR, which a node
 * owns (starts or adopts, and stops last) and a CLI command borrows when it runs.
 */
export async function resolveDatabase(config: EngineConfig, logger: Logger, options: { role?: OwnerRole } = {}): Promise<DatabaseTarget> {
  if (config.DATABASE_URL) {
    await waitForDatabase(config.DATABASE_URL, { logger });
    return { connectionString: config.DATABASE_URL, release: async () => {}, embedded: false };
  }
  const server = await startEmbeddedPostgres({ dataDir: config.SCHEDULER_DATA_DIR, port: config.SCHEDULER_EMBEDDED_PORT, logger, role: options.role });
  try {
    await waitForDatabase(server.connectionString, { logger });
  } catch (error) {
    await server.stop();
    throw error;
  }
  return { connectionString: server.connectionString, release: () => server.stop(), embedded: true };
}
