#!/usr/bin/env node
// The CLI is TypeScript run by Node's type stripping (Node >= 22.18). Started by an older
// Node (our machines' system Node is 20), it re-runs itself on the Node 22 that the `node`
// npm package installs, forwarding signals so `start` still shuts down gracefully.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import os from "node:os";

const [major, minor] = process.versions.node.split(".").map(Number);
if (major > 22 || (major === 22 && minor >= 18)) {
  const { runCli } = await import("../src/cli/main.ts");
  process.exitCode = await runCli(process.argv.slice(2));
} else {
  let nodeBinary;
  try {
    nodeBinary = createRequire(import.meta.url).resolve("node/bin/node");
  } catch {
    console.error(`error: systemprompt-scheduler needs Node >= 22.18 (this is ${process.version})\n  fix: run \`npm install\` in the package (it installs Node 22), or use Node 22`);
    process.exit(2);
  }
  const child = spawn(nodeBinary, [new URL(import.meta.url).pathname, ...process.argv.slice(2)], { stdio: "inherit" });
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  // A child killed by a signal exits as a shell reports it: 128 + the signal's number.
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
}
