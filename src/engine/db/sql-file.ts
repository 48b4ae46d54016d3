import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The folder holding `package.json`, found upwards from here: the same from `src/` (development) and `dist/` (the package). */
function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "package.json"))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${start}`);
  }
}

/** The package root: `sql/`, `tasks/` and `crontab` live there. */
export const projectRoot = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

const cache = new Map<string, string>();

/**
 * Reads a .sql file that sits next to the module asking for it, once.
 * `readSql(import.meta.url, "delete_batch.sql")`.
 */
export function readSql(moduleUrl: string, file: string): string {
  const full = path.resolve(path.dirname(fileURLToPath(moduleUrl)), file);
  let text = cache.get(full);
  if (text === undefined) {
    text = fs.readFileSync(full, "utf8");
    cache.set(full, text);
  }
  return text;
}
