import path from "node:path";
import { z } from "zod";
import { integer, readSettings } from "../engine/config.ts";
import { parseAllowlist } from "./services/allowlist.ts";
import { parseEnvAllowlist } from "./services/env-allowlist.ts";

/** A list setting read by `parse`: its items, or one issue per bad item, each naming the item. */
function checkedList(parse: (text: string) => { items: string[]; problems: string[] }) {
  return z
    .string()
    .transform((text, ctx) => {
      const { items, problems } = parse(text);
      for (const problem of problems) ctx.addIssue({ code: "custom", message: problem });
      return items;
    })
    .optional();
}

/** The platform's settings (the service reconciler's), from the environment like the engine's. */
export const platformSettings = {
  /** Service reconciler (src/platform/services): on/off for this node, pass interval, safety and shutdown policy. */
  SCHEDULER_RECONCILE_SERVICES: z.enum(["true", "false"]).default("true").transform((value) => value === "true"),
  SCHEDULER_RECONCILE_INTERVAL_MS: integer(100, 3_600_000).default(5000),
  SCHEDULER_PROTECTED_PORTS: z
    .string()
    .regex(/^\s*\d{1,5}(\s*,\s*\d{1,5})*\s*$/, "a comma-separated list of ports, e.g. 5432,6432")
    .default("5432,6432")
    .transform((text) => text.split(",").map((port) => Number(port.trim())))
    .pipe(z.array(z.number().int().min(1).max(65535))),
  SCHEDULER_SERVICES_ON_SHUTDOWN: z.enum(["leave-running", "stop"]).default("leave-running"),
  SCHEDULER_SERVICES_LOG_DIR: z.string().min(1).default(".data/services"),
  SCHEDULER_SERVICES_STOP_GRACE_MS: integer(0, 600_000).default(10_000),
  /** The programs services may run on this host (docs/services.md); unset: none. Never read from the database. */
  SCHEDULER_SERVICES_ALLOWED_COMMANDS: checkedList((text) => {
    const { entries, problems } = parseAllowlist(text);
    return { items: entries, problems };
  }),
  /** The environment variables a row's env may set on this host: names and PREFIX_* patterns; unset: none. */
  SCHEDULER_SERVICES_ALLOWED_ENV: checkedList((text) => {
    const { env, problems } = parseEnvAllowlist(text);
    return { items: env, problems };
  }),
  /** The same list in a file only the node's user can read (checked when the reconciler starts); its env: lines list the variables. */
  SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE: z.string().refine((file) => path.isAbsolute(file), "an absolute path to a file readable only by the scheduler's user").optional(),
};

export type PlatformConfig = z.infer<z.ZodObject<typeof platformSettings>>;

export function loadPlatformConfig(env: NodeJS.ProcessEnv = process.env): PlatformConfig {
  return readSettings(platformSettings, env);
}
