// `npm test`: type-check, then every test file under node:test against a real PostgreSQL.
// TEST_DATABASE_URL (or DATABASE_URL) names a server to use; otherwise an embedded one is
// started in a fresh temporary folder and removed afterwards. Each test file creates and
// drops its own database on that server. Extra arguments select test files.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { startEmbeddedPostgres } from "../src/db/embedded.ts";
import { projectRoot } from "../src/db/sql-file.ts";
import { createLogger } from "../src/log.ts";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

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

const logger = createLogger("warn", false);
let adminUrl = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
let stopServer = async () => {};
let tempDir: string | undefined;
if (!adminUrl) {
  tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-test-pg-"));
  fs.chmodSync(tempDir, 0o755);
  const server = await startEmbeddedPostgres({ dataDir: path.join(tempDir, "data"), port: await freePort(), logger });
  adminUrl = server.connectionString;
  stopServer = server.stop;
  console.log(`# embedded PostgreSQL for tests at ${adminUrl.replace(/:[^:@/]*@/, ":***@")}`);
}

const concurrency = process.env.TEST_CONCURRENCY ?? String(Math.max(2, os.availableParallelism()));
const result = spawnSync(process.execPath, ["--test", `--test-concurrency=${concurrency}`, "--test-timeout=300000", ...files], {
  stdio: "inherit",
  env: { ...process.env, TEST_DATABASE_URL: adminUrl, DATABASE_URL: "", LOG_LEVEL: process.env.LOG_LEVEL ?? "silent" },
});

await stopServer();
if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
process.exit(result.status ?? 1);
