import crypto from "node:crypto";
import fs from "node:fs";
import type { ParsedCronItem } from "graphile-worker";
import type { Logger } from "../log.ts";
import { errorMessage } from "../errors.ts";
import { replaceLiveCronItems } from "../graphile/internals.ts";
import { parseCrontabOrThrow, type CrontabEntry, type ParseOptions, type TaskCatalog } from "./parse.ts";

export interface CrontabWatcher {
  /** Reads the file now; resolves with the new entries, or null when unchanged. Throws on a bad edit. */
  check(): Promise<CrontabEntry[] | null>;
  /** The rejection in force: the file on disk is not the schedule the node runs. */
  rejected(): CrontabRejection | null;
  stop(): void;
}

/** The file on disk was rejected (`at`, why); the previous schedule stays in force. */
export interface CrontabRejection {
  at: Date;
  error: string;
}

function digest(text: string): string {
  return crypto.createHash("sha256").update(text).digest("hex");
}

/**
 * Polls the crontab file (editors replace files, which fs.watch misses) and swaps the
 * entries of the node's live cron list in place: its cron loop (cron-loop.ts) reads that
 * array every minute, so a change applies from the next tick without touching running jobs.
 * A bad edit is logged and the previous schedule stays; a rejected text is checked again
 * on every poll, so a line naming a task file that appears later is taken once it does.
 * `beforeCheck` runs first on every poll (the runner loads new task files there).
 */
export function watchCrontab(options: {
  path: string;
  initialText: string;
  catalog: TaskCatalog;
  parseOptions?: ParseOptions;
  liveItems: ParsedCronItem[];
  beforeCheck?(): Promise<void>;
  intervalMs: number;
  logger: Logger;
  onChange(entries: CrontabEntry[]): Promise<void>;
  /**
   * The file's state changed: rejected (a new bad edit), or null (repaired: applied, or put
   * back as the schedule in force). Awaited; a failure is logged and tried again next poll.
   */
  onStateChange?(rejection: CrontabRejection | null): Promise<void>;
}): CrontabWatcher {
  let lastDigest = digest(options.initialText);
  let rejection: CrontabRejection | null = null;
  // What onStateChange last reported successfully (undefined: nothing yet).
  let reported: CrontabRejection | null | undefined;
  let running: Promise<unknown> = Promise.resolve();

  async function report(): Promise<void> {
    if (reported === rejection || !options.onStateChange) return;
    if (reported === undefined && rejection === null) return;
    try {
      await options.onStateChange(rejection);
      reported = rejection;
    } catch (error) {
      options.logger.warn({ err: error }, "recording the crontab's state failed; will retry");
    }
  }

  async function check(): Promise<CrontabEntry[] | null> {
    await options.beforeCheck?.();
    let text: string;
    try {
      text = await fs.promises.readFile(options.path, "utf8");
    } catch (error) {
      throw new Error(`cannot read crontab ${options.path}: ${errorMessage(error)}; keeping the previous schedule`);
    }
    const next = digest(text);
    if (next === lastDigest) {
      // Put back as it was (a bad edit undone): the schedule in force is on disk again.
      if (rejection) {
        rejection = null;
        options.logger.info({ crontab: options.path }, "crontab reloaded: the file is the schedule in force again");
      }
      return null;
    }
    const entries = parseCrontabOrThrow(text, options.path, options.catalog, options.parseOptions);
    lastDigest = next;
    replaceLiveCronItems(options.liveItems, entries.map((entry) => entry.item));
    await options.onChange(entries);
    return entries;
  }

  const timer = setInterval(() => {
    running = running.then(async () => {
      try {
        const entries = await check();
        if (entries) {
          rejection = null;
          options.logger.info({ crontab: options.path, entries: entries.map((entry) => entry.identifier) }, "crontab reloaded");
        }
      } catch (error) {
        const message = errorMessage(error);
        if (message !== rejection?.error) {
          options.logger.error({ crontab: options.path, error: message }, "crontab edit rejected; the previous schedule stays in force");
          rejection = { at: new Date(), error: message };
        }
      }
      await report();
    });
  }, options.intervalMs);
  timer.unref();

  return {
    check: () => (running = running.then(check)) as Promise<CrontabEntry[] | null>,
    rejected: () => rejection,
    stop: () => clearInterval(timer),
  };
}
