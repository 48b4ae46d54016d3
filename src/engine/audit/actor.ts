import fs from "node:fs";
import os from "node:os";
import path from "node:path";

// Who an audit row says did it (scheduler.audit.actor): what the asker says of itself. The
// database adds what it knows either way (the role, the client address).

/** The person at the CLI: "OS user@host". */
export function cliActor(): string {
  let user: string;
  try {
    user = os.userInfo().username;
  } catch {
    // A uid with no passwd entry (a container's, say).
    user = process.env.USER ?? process.env.LOGNAME ?? `uid ${process.getuid?.() ?? "?"}`;
  }
  return `${user}@${os.hostname()}`;
}

/** The dashboard of a node, and where the request came from. */
export function dashboardActor(nodeId: string, from: string): string {
  return `dashboard on ${nodeId} (${from})`;
}

let application: string | undefined;

/**
 * An application embedding the scheduler (the library's default actor): its package name, as
 * npm says it or as the nearest package.json above its main script (or the working folder)
 * says it; "library" when there is none.
 */
export function applicationActor(): string {
  application ??= process.env.npm_package_name || packageNameAbove(process.argv[1]) || packageNameAbove(process.cwd()) || "library";
  return application;
}

function packageNameAbove(start: string | undefined): string | null {
  if (!start) return null;
  // Not a dependency's package.json (a script run by a tool in node_modules/.bin).
  const resolved = path.resolve(start);
  const outside = resolved.split(`${path.sep}node_modules${path.sep}`)[0]!;
  for (let dir = outside; ; dir = path.dirname(dir)) {
    try {
      const name = (JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: unknown }).name;
      if (typeof name === "string" && name) return name;
    } catch {
      // no package.json here (or not one we can read): look further up
    }
    if (path.dirname(dir) === dir) return null;
  }
}
