import fs from "node:fs";
import path from "node:path";

// Who is responsible for stopping the embedded server of a data folder: the process that
// started it (or adopted it, when its starter is gone). One file beside the folder, created
// exclusively, so two processes never both own it. Others only borrow the server.

export type OwnerRole = "node" | "cli";

export interface Owner {
  pid: number;
  role: OwnerRole;
  since: string;
}

export const ownerFileOf = (dataDir: string) => `${dataDir}.owner`;

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function readOwner(dataDir: string): Owner | null {
  try {
    const owner = JSON.parse(fs.readFileSync(ownerFileOf(dataDir), "utf8")) as Owner;
    return Number.isInteger(owner.pid) ? owner : null;
  } catch {
    return null;
  }
}

/** The live owner of the folder's server, other than this process; null when there is none. */
export function liveOwner(dataDir: string): Owner | null {
  const owner = readOwner(dataDir);
  return owner && owner.pid !== process.pid && pidAlive(owner.pid) ? owner : null;
}

/**
 * Makes this process the owner, unless another live process is: returns that one then. A file
 * left by a dead owner is replaced. `takeOver` replaces a live owner too (a node taking a
 * server from a CLI command that started it for a moment).
 */
export function claimOwnership(dataDir: string, role: OwnerRole, options: { takeOver?: boolean } = {}): Owner | null {
  const mine: Owner = { pid: process.pid, role, since: new Date().toISOString() };
  // The owner file sits beside the data folder, whose parent a fresh checkout lacks (.data/).
  fs.mkdirSync(path.dirname(ownerFileOf(dataDir)), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(ownerFileOf(dataDir), JSON.stringify(mine), { flag: "wx" });
      return null;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const current = liveOwner(dataDir);
    if (current && !options.takeOver) return current;
    fs.rmSync(ownerFileOf(dataDir), { force: true });
  }
  return liveOwner(dataDir);
}

/** Gives ownership up, if this process still has it. */
export function releaseOwnership(dataDir: string, pid = process.pid): boolean {
  if (readOwner(dataDir)?.pid !== pid) return false;
  fs.rmSync(ownerFileOf(dataDir), { force: true });
  return true;
}

/** Removes the owner file of an owner that is gone (a server stopped by hand after it died). */
export function forgetDeadOwner(dataDir: string): void {
  const owner = readOwner(dataDir);
  if (owner && owner.pid !== process.pid && !pidAlive(owner.pid)) fs.rmSync(ownerFileOf(dataDir), { force: true });
}
