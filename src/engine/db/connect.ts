import type { EngineConfig } from "../config.ts";
import { SchedulerError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { TargetSessionAttrs } from "./connection-string.ts";
import { createConnector, type Connector } from "./connector.ts";
import { startEmbeddedPostgres } from "./embedded/index.ts";
import type { OwnerRole } from "./embedded/owner.ts";
import { waitForDatabase } from "./pool.ts";

export interface DatabaseTarget {
  connectionString: string;
  /** Where its connections come from (hosts tried in order, checked for what they are for). */
  connector: Connector;
  /** Stops the embedded server if this process started it; otherwise does nothing. */
  release(): Promise<void>;
  embedded: boolean;
}

/**
 * What a server must be for connections that write: a node, or a command that changes
 * something. The connection string's target_session_attrs is honoured where it allows
 * writes (primary; read-write, also libpq's default `any`, which would let a node settle on a
 * standby); one that asks for a standby cannot work and is refused (exit 2).
 */
export function writerRequirement(wanted: TargetSessionAttrs, what: string): TargetSessionAttrs {
  if (wanted === "primary") return "primary";
  if (wanted === "any" || wanted === "read-write") return "read-write";
  throw new SchedulerError("invalid_config", `DATABASE_URL asks for target_session_attrs=${wanted}, but ${what} writes to the database and needs a primary`, {
    hint: "use target_session_attrs=read-write (or leave it out) for nodes and for commands that change something; read-only commands (status, history, nodes) may use a standby",
    exitCode: 2,
  });
}

/** A connector for connections that write (`what`: "a node", a command): see writerRequirement. */
export function writerConnector(connectionString: string, what: string, logger: Logger): Connector {
  const connector = createConnector(connectionString, { logger });
  const requirement = writerRequirement(connector.spec.targetSessionAttrs, what);
  return requirement === connector.requirement ? connector : connector.withRequirement(requirement);
}

/**
 * DATABASE_URL when set; otherwise the embedded server in SCHEDULER_DATA_DIR, which a node
 * owns (starts or adopts, and stops last) and a CLI command borrows when it runs.
 * `writes`: what will write through it (a node, a command), so it needs a server that takes
 * writes; without it the connection string's target_session_attrs applies (a standby may do).
 * `primaryTimeoutMs`: how long to wait for a primary when only standbys answer; `timeoutMs`:
 * for an unreachable server (25 s by default).
 */
export async function resolveDatabase(
  config: EngineConfig,
  logger: Logger,
  options: { role?: OwnerRole; writes?: string; primaryTimeoutMs?: number; timeoutMs?: number } = {},
): Promise<DatabaseTarget> {
  const connectorFor = (connectionString: string) =>
    options.writes ? writerConnector(connectionString, options.writes, logger) : createConnector(connectionString, { logger });
  if (config.DATABASE_URL) {
    const connector = connectorFor(config.DATABASE_URL);
    await waitForDatabase(connector, { logger, primaryTimeoutMs: options.primaryTimeoutMs, timeoutMs: options.timeoutMs });
    return { connectionString: config.DATABASE_URL, connector, release: async () => {}, embedded: false };
  }
  const server = await startEmbeddedPostgres({ dataDir: config.SCHEDULER_DATA_DIR, port: config.SCHEDULER_EMBEDDED_PORT, logger, role: options.role });
  const connector = connectorFor(server.connectionString);
  try {
    await waitForDatabase(connector, { logger });
  } catch (error) {
    await server.stop();
    throw error;
  }
  return { connectionString: server.connectionString, connector, release: () => server.stop(), embedded: true };
}
