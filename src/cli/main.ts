import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadConfig, type Config } from "../config.ts";
import { resolveDatabase, type DatabaseTarget } from "../engine/db/connect.ts";
import { createPool, type Pool } from "../engine/db/pool.ts";
import { errorMessage, SchedulerError } from "../engine/errors.ts";
import { createLogger } from "../engine/log.ts";
import { usageError, type CliContext, type Command } from "./command.ts";
import { auditCommand } from "./commands/audit.ts";
import { banCommand, bansCommand, unbanCommand } from "./commands/bans.ts";
import { dbCommand } from "./commands/db.ts";
import { historyCommand } from "./commands/history.ts";
import { pauseCommand, resumeCommand, runCommand } from "./commands/jobs.ts";
import { migrateCommand } from "./commands/migrate.ts";
import { nodesCommand } from "./commands/nodes.ts";
import { startCommand } from "./commands/start.ts";
import { servicesCommand } from "./commands/services.ts";

/** How long an interactive command waits for an unreachable database before it says so. */
const INTERACTIVE_GIVE_UP_MS = 8000;
import { statusCommand } from "./commands/status.ts";
import { numberTypes } from "../engine/db/number-types.ts";

export const commands: Command[] = [startCommand, statusCommand, historyCommand, runCommand, pauseCommand, resumeCommand, bansCommand, banCommand, unbanCommand, servicesCommand, nodesCommand, auditCommand, dbCommand, migrateCommand];

function overview(): string {
  const width = Math.max(...commands.map((command) => command.name.length));
  return [
    "systemprompt-scheduler: Postgres-native scheduler for the platform's maintenance and security jobs",
    "",
    "usage: systemprompt-scheduler COMMAND [options]   (COMMAND --help for its options)",
    "",
    ...commands.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`),
    "",
    "Configuration comes from the environment (DATABASE_URL, SCHEDULER_*, LOG_LEVEL): see README.md.",
  ].join("\n");
}



/** Finds the command (and sub-command) named by argv; returns it with the remaining args. */
function pick(argv: string[]): { command: Command; rest: string[] } | null {
  const [name, ...rest] = argv;
  let command = commands.find((candidate) => candidate.name === name);
  if (!command) return null;
  while (command.subcommands && rest[0] && !rest[0].startsWith("-")) {
    const sub: Command | undefined = command.subcommands.find((candidate) => candidate.name === rest[0]);
    if (!sub) throw usageError(`unknown sub-command '${rest[0]}' of '${command.name}'`, command.usage);
    rest.shift();
    command = sub;
  }
  return { command, rest };
}

export async function runCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    console.log(overview());
    return argv.length === 0 ? 2 : 0;
  }
  let database: DatabaseTarget | undefined;
  let pool: Pool | undefined;
  try {
    const picked = pick(argv);
    if (!picked) throw usageError(`unknown command '${argv[0]}'`, overview());
    const { command, rest } = picked;
    let parsed;
    try {
      parsed = parseArgs({ args: rest, options: { ...command.options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
    } catch (error) {
      throw usageError(describeParseError(error, argv.slice(0, argv.length - rest.length).join(" "), command), command.usage);
    }
    if (parsed.values.help || (command.subcommands && !command.run)) {
      console.log(command.usage);
      return 0;
    }
    const maxPositionals = command.maxPositionals ?? 0;
    if (parsed.positionals.length > maxPositionals) {
      const stray = parsed.positionals.slice(maxPositionals).map((arg) => `'${arg}'`).join(" ");
      throw usageError(`unexpected argument(s) ${stray}`, command.usage);
    }
    const config: Config = loadConfig(env);
    // Commands other than start log only problems, unless LOG_LEVEL says otherwise.
    const logger = createLogger(command === startCommand || env.LOG_LEVEL ? config.LOG_LEVEL : "warn");
    const ctx: CliContext = {
      config,
      logger,
      async pool() {
        if (!pool) {
          // A command that changes something needs a server that takes writes (and says at once
          // when every host answered and none is one); one that only reads may use what the
          // connection string asks for (a standby, say).
          const words = argv.slice(0, argv.length - rest.length).join(" ");
          // A person is waiting: an unreachable database is given up on within 10 s (the
          // command's own start-up included); `start` waits longer (SCHEDULER_DB_GIVE_UP_MS).
          const wait = { timeoutMs: INTERACTIVE_GIVE_UP_MS };
          database = await resolveDatabase(config, logger, command.readsOnly ? wait : { ...wait, writes: `'${words}'`, primaryTimeoutMs: 0 });
          pool = createPool(database.connector, { max: 4, logger, types: numberTypes });
        }
        return pool;
      },
      print: (text) => console.log(text),
    };
    return await command.run(ctx, { values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals });
  } catch (error) {
    console.error(`error: ${errorMessage(error)}`);
    return error instanceof SchedulerError ? error.exitCode : 1;
  } finally {
    await pool?.end().catch(() => {});
    await database?.release();
  }
}

const invokedDirectly = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  process.exitCode = await runCli(process.argv.slice(2));
}

/**
 * node:util's parseArgs message for an unknown option, said plainly: the option, the command's
 * own options, and, for a command that passes arguments on (db psql), where those go (its own
 * suggestion has unbalanced quotes).
 */
function describeParseError(error: unknown, words: string, command: Command): string {
  const code = (error as { code?: string }).code;
  const option = /'(-[^']*)'/.exec((error as Error).message)?.[1];
  if (code !== "ERR_PARSE_ARGS_UNKNOWN_OPTION" || !option) return (error as Error).message;
  const own = Object.keys(command.options ?? {}).map((name) => `--${name}`);
  const known = own.length > 0 ? `its options: ${own.join(", ")}` : "it takes no options";
  if ((command.maxPositionals ?? 0) > 0) {
    return `unknown option '${option}' for '${words}' (${known}); an argument for another program goes after --, e.g. systemprompt-scheduler ${words} -- ${option} …`;
  }
  return `unknown option '${option}' for '${words}' (${known})`;
}
