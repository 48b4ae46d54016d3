// `npm run build` (also `prepare`, so `npm pack`, a git dependency and an install from a
// path get it): compiles src/ and tasks/ to dist/ (JavaScript, declarations, source maps
// with their sources), and copies the .sql files that sit beside the modules reading them and
// the dashboard's static page (src/engine/http/dashboard/: HTML, CSS and browser JavaScript).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { projectRoot } from "../src/engine/db/sql-file.ts";

const dist = path.join(projectRoot, "dist");
fs.rmSync(dist, { recursive: true, force: true });

const tsc = spawnSync(process.execPath, [path.join(projectRoot, "node_modules/typescript/bin/tsc"), "-p", path.join(projectRoot, "tsconfig.build.json")], { stdio: "inherit" });
if (tsc.status !== 0) {
  console.error("build failed: tsc -p tsconfig.build.json reported errors (above)");
  process.exit(1);
}

const DASHBOARD = path.join(projectRoot, "src", "engine", "http", "dashboard");
let copied = 0;
const copySql = (dir: string) => {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) copySql(full);
    else if (entry.name.endsWith(".sql") || dir === DASHBOARD) {
      const target = path.join(dist, path.relative(projectRoot, full));
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.copyFileSync(full, target);
      copied += 1;
    }
  }
};
copySql(path.join(projectRoot, "src"));
console.error(`built dist/ (${copied} .sql and dashboard files copied beside their modules)`);
