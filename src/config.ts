import { z } from "zod";
import { engineSettings, readSettings } from "./engine/config.ts";
import { platformSettings } from "./platform/config.ts";

/** Every setting the CLI reads: the engine's, the platform's, and which of them runs. */
export const configSettings = {
  ...engineSettings,
  ...platformSettings,
  /** false: the scheduler engine alone (no domain tables, built-in jobs, bootstrap job or services). */
  SCHEDULER_PLATFORM: z.enum(["true", "false"]).default("true").transform((value) => value === "true"),
};

export type Config = z.infer<z.ZodObject<typeof configSettings>>;

/** Reads every setting at once: all bad keys are named in one error (exit 2). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return readSettings(configSettings, env);
}
