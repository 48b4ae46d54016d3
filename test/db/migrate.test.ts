import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { listMigrations, migrate } from "../../src/db/migrate.ts";
import { createPool } from "../../src/db/pool.ts";
import { testLogger, useTestDatabase } from "../helpers/db.ts";

const db = useTestDatabase({ migrate: false });

describe("migrations", () => {
  it("apply each file exactly once when several nodes migrate at the same time", async () => {
    const pools = [1, 2, 3].map(() => createPool(db.connectionString, { max: 2 }));
    try {
      const results = await Promise.all(pools.map((pool) => migrate(pool, testLogger)));
      const applied = results.flatMap((result) => result.applied);
      const files = listMigrations();
      assert.equal(applied.length, files.length, "every file applied once across the three");
      const { rows } = await db.pool.query("select version, count(*)::int as n from scheduler.migrations group by version order by version");
      assert.deepEqual(rows.map((row) => row.version), files.map((file) => file.version));
      assert.ok(rows.every((row) => row.n === 1));
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });

  it("is idempotent: a second run applies nothing", async () => {
    const { applied } = await migrate(db.pool, testLogger);
    assert.deepEqual(applied, []);
  });

  it("creates the domain tables with IF NOT EXISTS, so an existing platform database is adopted", async () => {
    // re-running the first migration's SQL on a database that has the tables must not fail
    const first = listMigrations()[0]!;
    await db.pool.query(first.sql);
    const { rows } = await db.pool.query("select to_regclass('public.user_sessions') as t, to_regclass('public.scheduled_jobs') as v");
    assert.deepEqual(rows[0], { t: "user_sessions", v: "scheduled_jobs" });
  });
});
