import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { engineMigrations, listMigrations, migrate as migratePlan } from "../../../src/engine/db/migrate.ts";
import { schemaStatus } from "../../../src/engine/db/readiness.ts";
import { listRepeatables } from "../../../src/engine/db/repeatables.ts";
import { schemaPlanOf } from "../../../src/engine/db/schema-plan.ts";
import { platformMigrations } from "../../../src/platform/index.ts";
import { migrate } from "../../../src/scheduler.ts";
import { createPool } from "../../../src/engine/db/pool.ts";
import { testLogger, useTestDatabase } from "../../helpers/db.ts";

const db = useTestDatabase({ migrate: false });

describe("migrations", () => {
  it("apply each file exactly once when several nodes migrate at the same time", async () => {
    const pools = [1, 2, 3].map(() => createPool(db.connectionString, { max: 2 }));
    try {
      const results = await Promise.all(pools.map((pool) => migrate(pool, { logger: testLogger })));
      const applied = results.flatMap((result) => result.applied);
      const files = listMigrations([engineMigrations, platformMigrations]);
      const repeatables = listRepeatables([engineMigrations, platformMigrations]);
      assert.ok(repeatables.some((repeatable) => repeatable.file === "sql/engine/repeatable/scheduled_jobs.sql"));
      assert.equal(applied.length, files.length + repeatables.length, "every file applied once across the three, numbered and repeatable");
      assert.deepEqual(applied.slice(-repeatables.length), repeatables.map((repeatable) => repeatable.file), "the repeatable files last");
      const { rows } = await db.pool.query("select version, count(*)::int as n from scheduler.migrations group by version order by version");
      assert.deepEqual(rows.map((row) => row.version), files.map((file) => file.version));
      assert.ok(rows.every((row) => row.n === 1));
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });

  it("is idempotent: a second run applies nothing", async () => {
    const { applied } = await migrate(db.pool, { logger: testLogger });
    assert.deepEqual(applied, []);
  });

  it("creates the domain tables with IF NOT EXISTS, so an existing platform database is adopted", async () => {
    // re-running the first migration's SQL on a database that has the tables must not fail
    const first = listMigrations([engineMigrations, platformMigrations])[0]!;
    await db.pool.query(first.sql);
    const { rows } = await db.pool.query("select to_regclass('public.user_sessions') as t, to_regclass('public.scheduled_jobs') as v");
    assert.deepEqual(rows[0], { t: "user_sessions", v: "scheduled_jobs" });
  });

  it("runs a repeatable file again when its text changed, and only then; a node reads that as pending", async () => {
    const plan = schemaPlanOf([]);
    assert.equal((await schemaStatus(db.pool, plan)).current, true);
    // As if the file had been edited since it last ran.
    await db.pool.query("update scheduler.repeatable_migrations set checksum = 'edited' where file = 'sql/engine/repeatable/scheduled_jobs.sql'");
    await db.pool.query("drop view public.scheduled_jobs");
    const status = await schemaStatus(db.pool, plan);
    assert.deepEqual([status.current, status.pending], [false, ["sql/engine/repeatable/scheduled_jobs.sql"]]);
    const { applied } = await migratePlan(db.pool, testLogger, plan);
    assert.deepEqual(applied, ["sql/engine/repeatable/scheduled_jobs.sql"]);
    assert.equal((await db.pool.query("select to_regclass('public.scheduled_jobs') as v")).rows[0].v, "scheduled_jobs");
    assert.equal((await schemaStatus(db.pool, plan)).current, true);
    assert.deepEqual((await migratePlan(db.pool, testLogger, plan)).applied, [], "unchanged: not run again");
  });

  it("runs every repeatable file again after a numbered migration, which may have dropped what they define", async () => {
    const pack = fs.mkdtempSync(path.join(os.tmpdir(), "sps-pack-migrations-"));
    try {
      fs.writeFileSync(path.join(pack, "900_rebuild_history.sql"), "drop view public.scheduled_jobs;\n");
      const plan = { ...schemaPlanOf([]), dirs: [engineMigrations, pack] };
      const { applied } = await migratePlan(db.pool, testLogger, plan);
      assert.equal(applied[0], path.relative(path.resolve(engineMigrations, "../.."), path.join(pack, "900_rebuild_history.sql")));
      assert.deepEqual(applied.slice(1), ["sql/engine/repeatable/scheduled_jobs.sql"]);
      assert.equal((await db.pool.query("select count(*)::int as n from scheduled_jobs")).rows[0].n, 0, "the view is back, and reads");
    } finally {
      fs.rmSync(pack, { recursive: true, force: true });
      await db.pool.query("delete from scheduler.migrations where version = 900");
    }
  });

  it("refuses a repeatable file that cannot run again, naming it and the fix", async () => {
    const pack = fs.mkdtempSync(path.join(os.tmpdir(), "sps-pack-migrations-"));
    try {
      fs.mkdirSync(path.join(pack, "repeatable"));
      fs.writeFileSync(path.join(pack, "repeatable", "broken.sql"), "create view public.scheduled_jobs as select 1 as one;\n");
      const plan = { ...schemaPlanOf([]), dirs: [engineMigrations, pack] };
      await assert.rejects(migratePlan(db.pool, testLogger, plan), (error: Error & { hint?: string }) => {
        assert.match(error.message, /repeatable migration .*broken\.sql failed: relation "scheduled_jobs" already exists/);
        assert.match(error.hint ?? "", /create or replace/);
        return true;
      });
      assert.equal((await db.pool.query("select count(*)::int as n from scheduler.repeatable_migrations where file like '%broken.sql'")).rows[0].n, 0, "not recorded");
    } finally {
      fs.rmSync(pack, { recursive: true, force: true });
    }
  });
});
