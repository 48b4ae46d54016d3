#!/usr/bin/env node
// The CLI. In the package it runs the compiled dist/; in a checkout of the repository (src/
// is there) it runs the TypeScript directly by Node's type stripping. Both need Node >= 22.18
// (graphile-worker 0.18 does). Started by an older Node in a checkout (our machines' system
// Node is 20), it re-runs itself on the Node 22 that the `node` dev dependency installs,
// forwarding signals so `start` still shuts down gracefully.
import { spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";

const REQUIRED = "22.18";
const source = new URL("../src/cli/main.ts", import.meta.url);
const compiled = new URL("../dist/src/cli/main.js", import.meta.url);
const [major, minor] = process.versions.node.split(".").map(Number);

if (major > 22 || (major === 22 && minor >= 18)) {
  const { runCli } = await import(fs.existsSync(source) ? source.href : compiled.href);
  process.exitCode = await runCli(process.argv.slice(2));
} else {
  let nodeBinary;
  try {
    nodeBinary = createRequire(import.meta.url).resolve("node/bin/node");
  } catch {
    console.error(
      `error: systemprompt-scheduler needs Node.js >= ${REQUIRED}; this is Node.js ${process.version} (${process.execPath})\n` +
        `  fix: run it on Node 22 fetched by npm, with no install: npx -y node@22 node_modules/.bin/systemprompt-scheduler ${process.argv.slice(2).join(" ")}\n` +
        `       or install Node.js 22 LTS: \`nvm install 22\` (https://github.com/nvm-sh/nvm), or the official binaries from https://nodejs.org/en/download`,
    );
    process.exit(2);
  }
  const child = spawn(nodeBinary, [new URL(import.meta.url).pathname, ...process.argv.slice(2)], { stdio: "inherit" });
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  // A child killed by a signal exits as a shell reports it: 128 + the signal's number.
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
}
