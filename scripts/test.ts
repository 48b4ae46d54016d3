// `npm test`: type-check, then every test file under node:test against a real PostgreSQL.
// TEST_DATABASE_URL (or DATABASE_URL) names a server to use; otherwise an embedded one is
// started in a fresh temporary folder and removed afterwards. Each test file creates and
// drops its own database on that server. Extra arguments select test files.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../src/engine/db/sql-file.ts";
import { postgresForRun } from "./postgres.ts";

function findTests(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return findTests(full);
    return entry.name.endsWith(".test.ts") ? [full] : [];
  });
}

const args = process.argv.slice(2);
const files = args.length > 0 ? args : findTests(path.join(projectRoot, "test")).sort();

if (!process.env.SKIP_TYPECHECK) {
  const tsc = spawnSync(process.execPath, [path.join(projectRoot, "node_modules/typescript/bin/tsc"), "--noEmit", "-p", projectRoot], { stdio: "inherit" });
  if (tsc.status !== 0) {
    console.error("type check failed (tsc --noEmit)");
    process.exit(1);
  }
}

const server = await postgresForRun();
const adminUrl = server.adminUrl;
if (server.embedded) console.log(`# embedded PostgreSQL for tests at ${adminUrl.replace(/:[^:@/]*@/, ":***@")}`);

const concurrency = process.env.TEST_CONCURRENCY ?? String(Math.max(2, os.availableParallelism()));
const result = spawnSync(process.execPath, ["--test", `--test-concurrency=${concurrency}`, "--test-timeout=300000", ...files], {
  stdio: "inherit",
  // Many nodes run at once: none serves HTTP unless its test asks for an address (a free port).
  env: { ...process.env, TEST_DATABASE_URL: adminUrl, DATABASE_URL: "", LOG_LEVEL: process.env.LOG_LEVEL ?? "silent", SCHEDULER_HTTP_ADDR: process.env.SCHEDULER_HTTP_ADDR ?? "off" },
});

await server.release();
process.exit(result.status ?? 1);
