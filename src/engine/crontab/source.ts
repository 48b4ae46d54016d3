import fs from "node:fs";
import { SchedulerError } from "../errors.ts";
import { parseCrontabOrThrow, type CrontabEntry, type ParseOptions, type TaskCatalog } from "./parse.ts";

export interface CrontabSource {
  /** The file, when the crontab comes from one (then it is watched); null for given text. */
  path: string | null;
  text: string;
  entries: CrontabEntry[];
  /** How it was parsed (the default zone): a reload parses the same way. */
  parseOptions: ParseOptions;
}

/** Reads and validates the crontab: given text, or the file at `path`. */
export function loadCrontab(source: { text?: string; path: string | null }, catalog: TaskCatalog, parseOptions: ParseOptions = {}): CrontabSource {
  if (source.text !== undefined || source.path === null) {
    if (source.text === undefined) return { path: null, text: "", entries: [], parseOptions };
    return { path: null, text: source.text, entries: parseCrontabOrThrow(source.text, "(crontab option)", catalog, parseOptions), parseOptions };
  }
  let text: string;
  try {
    text = fs.readFileSync(source.path, "utf8");
  } catch (error) {
    throw new SchedulerError("crontab_missing", `cannot read crontab ${source.path}: ${(error as Error).message}`, {
      hint: "create the file (an empty one disables cron) or set SCHEDULER_CRONTAB to its path",
      exitCode: 2,
    });
  }
  return { path: source.path, text, entries: parseCrontabOrThrow(text, source.path, catalog, parseOptions), parseOptions };
}
