import crypto from "node:crypto";
import { after, before } from "node:test";
import pg from "pg";
import { migrate } from "../../src/scheduler.ts";
import { createPool, type Pool } from "../../src/engine/db/pool.ts";
import { createLogger } from "../../src/engine/log.ts";

export const testLogger = createLogger(process.env.LOG_LEVEL || "silent", false);

export function adminUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error("TEST_DATABASE_URL is not set: run the tests with `npm test`, which provides a PostgreSQL");
  return url;
}

export function urlForDatabase(name: string): string {
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  return url.toString();
}

export interface TestDatabase {
  name: string;
  connectionString: string;
  pool: Pool;
  drop(): Promise<void>;
}

/** A fresh, migrated database of its own; `drop()` removes it and every connection to it. */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `sps_test_${Date.now().toString(36)}_${crypto.randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const connectionString = urlForDatabase(name);
  const pool = createPool(connectionString, { max: 10 });
  if (options.migrate !== false) await migrate(pool, { logger: testLogger });
  return {
    name,
    connectionString,
    pool,
    async drop() {
      await pool.end().catch(() => {});
      const client = new pg.Client({ connectionString: adminUrl() });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
    },
  };
}

/**
 * Registers before/after hooks for a test file: one fresh database for the
 * whole file, dropped at the end. Read `db.pool` etc. inside tests.
 */
export function useTestDatabase(options: { migrate?: boolean } = {}): TestDatabase {
  const handle = {} as TestDatabase;
  before(async () => {
    Object.assign(handle, await createTestDatabase(options));
  });
  after(async () => {
    await handle.drop?.();
  });
  return handle;
}
