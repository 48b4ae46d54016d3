// A PostgreSQL for tests and benchmarks: TEST_DATABASE_URL (or DATABASE_URL) when set,
// otherwise an embedded server in a fresh temporary folder, removed afterwards.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startEmbeddedPostgres } from "../src/engine/db/embedded/index.ts";
import { createLogger } from "../src/engine/log.ts";
import { freePort } from "./free-port.ts";


export interface ServerForRun {
  adminUrl: string;
  embedded: boolean;
  release(): Promise<void>;
}

export async function postgresForRun(): Promise<ServerForRun> {
  const given = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
  if (given) return { adminUrl: given, embedded: false, release: async () => {} };
  const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-pg-"));
  fs.chmodSync(tempDir, 0o755);
  const server = await startEmbeddedPostgres({ dataDir: path.join(tempDir, "data"), port: await freePort(), logger: createLogger("warn", false) });
  return {
    adminUrl: server.connectionString,
    embedded: true,
    async release() {
      await server.stop();
      fs.rmSync(tempDir, { recursive: true, force: true });
    },
  };
}
