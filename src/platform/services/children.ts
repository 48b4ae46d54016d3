// The processes this node spawned and still parents: their exit codes are only visible to
// us, so we record them, and an exit we did not cause wakes the reconciler at once.
import type { ChildProcess } from "node:child_process";
import type { Pool } from "../../engine/db/pool.ts";
import type { Logger } from "../../engine/log.ts";
import { recordExit } from "./store.ts";

interface Tracked {
  name: string;
  child: ChildProcess;
  stopping: boolean;
}

export class ChildRegistry {
  readonly #byInstance = new Map<string, Tracked>();
  readonly #pool: Pool;
  readonly #logger: Logger;
  readonly #onUnexpectedExit: (name: string) => void;
  #closed = false;

  constructor(pool: Pool, logger: Logger, onUnexpectedExit: (name: string) => void = () => {}) {
    this.#pool = pool;
    this.#logger = logger;
    this.#onUnexpectedExit = onUnexpectedExit;
  }

  track(name: string, instanceId: string, child: ChildProcess): void {
    const tracked: Tracked = { name, child, stopping: false };
    this.#byInstance.set(instanceId, tracked);
    child.once("exit", (code, signal) => {
      this.#byInstance.delete(instanceId);
      if (this.#closed) return;
      this.#logger.info({ service: name, pid: child.pid, code, signal, expected: tracked.stopping }, "service process exited");
      recordExit(this.#pool, name, instanceId, code, signal).catch((error: unknown) => {
        this.#logger.warn({ err: error, service: name }, "could not record a service's exit code");
      });
      if (!tracked.stopping) this.#onUnexpectedExit(name);
    });
  }

  /** Marks an instance as being stopped by us, so its exit is not reported as a crash. */
  stopping(instanceId: string | null): void {
    if (instanceId) {
      const tracked = this.#byInstance.get(instanceId);
      if (tracked) tracked.stopping = true;
    }
  }

  /** Stops reporting exits (the pool may be closing); the processes themselves keep running. */
  close(): void {
    this.#closed = true;
  }
}
