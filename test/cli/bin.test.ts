import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { projectRoot } from "../../src/engine/db/sql-file.ts";

// The bin, started by an older system Node, re-runs itself on the package's Node 22 and
// forwards signals; when the CLI dies of a signal, the bin exits as a shell would report it:
// 128 + the signal's number (SIGHUP 129, SIGINT 130, SIGTERM 143).

const systemNode = ["/usr/bin/node", "/usr/local/bin/node"].find((candidate) => spawnSync(candidate, ["--version"]).status === 0);
const version = systemNode ? spawnSync(systemNode, ["-p", "process.versions.node"], { encoding: "utf8" }).stdout.trim() : "";
const [major = 0, minor = 0] = version.split(".").map(Number);
const reRuns = systemNode !== undefined && (major < 22 || (major === 22 && minor < 18));

describe("bin/systemprompt-scheduler.js on an older Node", { skip: reRuns ? false : `needs a system Node older than 22.18 (found ${version || "none"})` }, () => {
  for (const signal of ["SIGHUP", "SIGINT", "SIGTERM"] as const) {
    it(`exits 128 + the number of ${signal} when the CLI dies of it`, async () => {
      // `status` against a closed port waits for the database, with no signal handler of its own.
      const child = spawn(systemNode!, [path.join(projectRoot, "bin/systemprompt-scheduler.js"), "status"], {
        cwd: projectRoot,
        env: { ...process.env, DATABASE_URL: "postgres://postgres@127.0.0.1:1/nowhere", LOG_LEVEL: "warn" },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (chunk) => (stderr += chunk));
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
      const deadline = Date.now() + 20_000;
      while (!stderr.includes("waiting for PostgreSQL") && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.match(stderr, /waiting for PostgreSQL/, "the CLI runs on Node 22 under the bin");
      child.kill(signal);
      assert.equal(await exited, 128 + os.constants.signals[signal]);
    });
  }
});

describe("bin/systemprompt-scheduler.js where no Node 22 is installed", { skip: reRuns ? false : `needs a system Node older than 22.18 (found ${version || "none"})` }, () => {
  it("refuses with fixes that work on this machine: npx -y node@22, nvm, the official binaries", () => {
    // An installed package without the repository's `node` dev dependency.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sps-bin-"));
    try {
      fs.mkdirSync(path.join(dir, "bin"));
      fs.copyFileSync(path.join(projectRoot, "bin/systemprompt-scheduler.js"), path.join(dir, "bin/systemprompt-scheduler.js"));
      fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "systemprompt-scheduler", type: "module" }));
      const result = spawnSync(systemNode!, [path.join(dir, "bin/systemprompt-scheduler.js"), "status"], { encoding: "utf8" });
      assert.equal(result.status, 2);
      assert.match(result.stderr, /needs Node\.js >= 22\.18; this is Node\.js v/);
      assert.match(result.stderr, /npx -y node@22 node_modules\/\.bin\/systemprompt-scheduler status/);
      assert.match(result.stderr, /nvm install 22/);
      assert.match(result.stderr, /https:\/\/nodejs\.org\/en\/download/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
