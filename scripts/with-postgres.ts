// `node scripts/with-postgres.ts FILE [ARGS]`: runs FILE (a benchmark) with TEST_DATABASE_URL
// naming a PostgreSQL server (see scripts/postgres.ts), then releases it.
import { spawnSync } from "node:child_process";
import { postgresForRun } from "./postgres.ts";

const [file, ...args] = process.argv.slice(2);
if (!file) {
  console.error("usage: node scripts/with-postgres.ts FILE [ARGS]");
  process.exit(2);
}
const server = await postgresForRun();
console.log(`# PostgreSQL: ${server.embedded ? "embedded (temporary)" : server.adminUrl.replace(/:[^:@/]*@/, ":***@")}`);
const result = spawnSync(process.execPath, [file, ...args], { stdio: "inherit", env: { ...process.env, TEST_DATABASE_URL: server.adminUrl, SCHEDULER_HTTP_ADDR: process.env.SCHEDULER_HTTP_ADDR ?? "off" } });
await server.release();
process.exit(result.status ?? 1);
