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
  stop(): void;
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
}): CrontabWatcher {
  let lastDigest = digest(options.initialText);
  let lastProblem: string | null = null;
  let running: Promise<unknown> = Promise.resolve();

  async function check(): Promise<CrontabEntry[] | null> {
    await options.beforeCheck?.();
    let text: string;
    try {
      text = await fs.promises.readFile(options.path, "utf8");
    } catch (error) {
      throw new Error(`cannot read crontab ${options.path}: ${errorMessage(error)}; keeping the previous schedule`);
    }
    const next = digest(text);
    if (next === lastDigest) return null;
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
          lastProblem = null;
          options.logger.info({ crontab: options.path, entries: entries.map((entry) => entry.identifier) }, "crontab reloaded");
        }
      } catch (error) {
        const message = errorMessage(error);
        if (message !== lastProblem) options.logger.error({ crontab: options.path, error: message }, "crontab edit rejected; the previous schedule stays in force");
        lastProblem = message;
      }
    });
  }, options.intervalMs);
  timer.unref();

  return {
    check: () => (running = running.then(check)) as Promise<CrontabEntry[] | null>,
    stop: () => clearInterval(timer),
  };
}
