import os from "node:os";
import type { Logger } from "../engine/log.ts";

// How a node learns it must stop, whatever stops it: SIGTERM (systemd, Docker, Kubernetes, npm
// forwarding it), SIGINT (Ctrl-C), SIGHUP (its terminal closed), or its parent process going
// away without a word (a wrapper such as npm killed outright). The first request starts the
// graceful shutdown; each further one asks it to hurry (grace cut to zero, still clean).

export interface ShutdownRequests {
  /** Settles with the reason of the first request. */
  requested: Promise<string>;
  isRequested(): boolean;
  /** Called on every request after the first. */
  onHurry(listener: () => void): void;
  /** The exit code that reports how the node was stopped: 0 unless it had to hurry. */
  exitCode(): number;
  dispose(): void;
}

const SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;
const DUPLICATE_WINDOW_MS = 500;

export function listenForShutdown(logger: Logger, options: { parentPollMs?: number } = {}): ShutdownRequests {
  let first: ((reason: string) => void) | undefined;
  const requested = new Promise<string>((resolve) => (first = resolve));
  let count = 0;
  let hurriedBy: NodeJS.Signals | null = null;
  const hurryListeners: (() => void)[] = [];

  const request = (reason: string, signal: NodeJS.Signals | null) => {
    count += 1;
    // The terminal may be gone (SIGHUP): a log line must not take the shutdown down with it.
    const say = (fn: () => void) => {
      try {
        fn();
      } catch {
        /* nowhere to log to */
      }
    };
    if (count === 1) {
      say(() => logger.info({ reason }, "shutdown requested"));
      first?.(reason);
      return;
    }
    hurriedBy ??= signal ?? "SIGTERM";
    say(() => logger.warn({ reason }, "shutdown requested again: cancelling running jobs now (they will be retried)"));
    for (const listener of hurryListeners) listener();
  };

  // Ctrl-C in a terminal reaches every process of the foreground group, and wrappers (npm, the
  // bin) forward it too: the same signal twice within a moment is one request, not two.
  let last: { signal: NodeJS.Signals; at: number } | null = null;
  const handlers = SIGNALS.map((signal) => {
    const handler = () => {
      const now = Date.now();
      if (last?.signal === signal && now - last.at < DUPLICATE_WINDOW_MS) return;
      last = { signal, at: now };
      request(signal, signal);
    };
    process.on(signal, handler);
    return [signal, handler] as const;
  });

  // A parent that dies outright cannot forward a signal: the node notices it was re-parented.
  const parent = process.ppid;
  const parentWatch =
    parent > 1
      ? setInterval(() => {
          if (process.ppid !== parent) {
            clearInterval(parentWatch);
            request(`parent process ${parent} exited`, null);
          }
        }, options.parentPollMs ?? 1000)
      : undefined;
  parentWatch?.unref();

  return {
    requested,
    isRequested: () => count > 0,
    onHurry: (listener) => hurryListeners.push(listener),
    exitCode: () => (hurriedBy ? 128 + (os.constants.signals[hurriedBy] ?? 0) : 0),
    dispose() {
      for (const [signal, handler] of handlers) process.off(signal, handler);
      if (parentWatch) clearInterval(parentWatch);
    },
  };
}
