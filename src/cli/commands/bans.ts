import { cliActor } from "../../engine/audit/actor.ts";
import { SchedulerError } from "../../engine/errors.ts";
import { banIp, listBans, unbanIp, type BanResult } from "../../platform/security/bans.ts";
import { parseDuration } from "../../platform/security/duration.ts";
import { parseIp } from "../../platform/security/ip.ts";
import { limitOption, type Command } from "../command.ts";
import { renderTable, toJson } from "../table.ts";

// bans list | ban IP | unban IP: every ban goes through the same policy as the jobs
// (scheduler.ban_ip): allowlisted addresses are refused, permanent bans are never shortened.

const usageError = (code: string, message: string, hint?: string) => new SchedulerError(code, message, { exitCode: 2, hint });

function requireIp(positionals: string[], usage: string): string {
  const [text, ...rest] = positionals;
  if (text === undefined) throw usageError("missing_ip", "an IP address is required", usage);
  if (rest.length > 0) throw usageError("extra_arguments", `one IP address at a time; unexpected: ${rest.join(" ")}`, usage);
  const parsed = parseIp(text);
  if (!parsed.ok) throw usageError("bad_ip", parsed.error);
  return parsed.value;
}

const listCommand: Command = {
  name: "list",
  readsOnly: true,
  summary: "banned IP addresses, newest first",
  usage: "systemprompt-scheduler bans list [--active] [--limit N] [--json]",
  options: { active: { type: "boolean" }, limit: { type: "string", short: "n" }, json: { type: "boolean" } },
  async run(ctx, args) {
    const limit = limitOption(args.values.limit, 100, 100_000);
    const rows = await listBans(await ctx.pool(), { activeOnly: args.values.active === true, limit });
    if (args.values.json) {
      ctx.print(toJson(rows));
      return 0;
    }
    ctx.print(
      renderTable(
        rows.map((row) => ({ ...row, until: row.is_permanent ? "permanent" : row.expires_at, state: row.active ? "active" : "expired" })),
        [
          { key: "ip_address", header: "IP" },
          { key: "state", header: "STATE" },
          { key: "until", header: "UNTIL" },
          { key: "ban_count", header: "BANS" },
          { key: "ban_source", header: "SOURCE" },
          { key: "banned_at", header: "BANNED AT" },
          { key: "reason", header: "REASON" },
        ],
      ),
    );
    return 0;
  },
};

export const bansCommand: Command = {
  name: "bans",
  summary: "banned IP addresses (bans list)",
  usage: "systemprompt-scheduler bans list [--active] [--limit N] [--json]",
  subcommands: [listCommand],
  async run() {
    return 2;
  },
};

function describeBan(result: BanResult): string {
  const until = result.is_permanent ? "permanently" : `until ${result.expires_at?.toISOString()}`;
  switch (result.outcome) {
    case "created":
    case "renewed":
      return `banned ${result.ip_address} ${until} (ban #${result.ban_count})`;
    case "extended":
      return `extended the ban of ${result.ip_address} ${until}`;
    case "made_permanent":
      return `the ban of ${result.ip_address} is now permanent`;
    case "skipped_active":
      return `${result.ip_address} is already banned ${until}; a ban is never shortened`;
    case "skipped_permanent":
      return `${result.ip_address} is already banned permanently; nothing changed`;
    default:
      return `${result.ip_address}: ${result.outcome}`;
  }
}

export const banCommand: Command = {
  name: "ban",
  summary: "ban an IP address (--duration D or --permanent)",
  usage: "systemprompt-scheduler ban IP [--reason R] [--duration D | --permanent] [--json]   (D: 30m, 12h, 7d, 2w, 1d12h; default 7d)",
  options: { reason: { type: "string" }, duration: { type: "string" }, permanent: { type: "boolean" }, json: { type: "boolean" } },
  maxPositionals: 1,
  async run(ctx, args) {
    const ip = requireIp(args.positionals, banCommand.usage);
    const permanent = args.values.permanent === true;
    if (permanent && args.values.duration !== undefined) {
      throw usageError("conflicting_options", "--duration and --permanent exclude each other", "give one of them");
    }
    let durationSeconds: number | null = null;
    if (!permanent) {
      const parsed = parseDuration(String(args.values.duration ?? "7d"));
      if (!parsed.ok) throw usageError("bad_duration", parsed.error);
      durationSeconds = parsed.value;
    }
    const reason = typeof args.values.reason === "string" && args.values.reason.trim() !== "" ? args.values.reason.trim() : "Manual ban";
    const result = await banIp(await ctx.pool(), { ip, reason, durationSeconds, permanent, actor: cliActor() });
    if (result.outcome === "skipped_allowlisted") {
      throw new SchedulerError("allowlisted_ip", `refused: ${ip} is allowlisted (${result.allowlisted_by}) and is never banned`, {
        hint: result.allowlisted_by?.startsWith("allowlist") ? "remove it from scheduler.ip_allowlist first if the ban is really wanted" : undefined,
      });
    }
    if (result.outcome === "invalid") throw usageError("bad_ip", `'${ip}' is not an IP address PostgreSQL accepts`);
    ctx.print(args.values.json ? toJson(result) : describeBan(result));
    return 0;
  },
};

export const unbanCommand: Command = {
  name: "unban",
  summary: "lift the ban of an IP address (--forget also clears its offence history)",
  usage: "systemprompt-scheduler unban IP [--forget] [--json]",
  options: { forget: { type: "boolean" }, json: { type: "boolean" } },
  maxPositionals: 1,
  async run(ctx, args) {
    const ip = requireIp(args.positionals, unbanCommand.usage);
    const forget = args.values.forget === true;
    const removed = await unbanIp(await ctx.pool(), ip, forget, cliActor());
    if (args.values.json) {
      ctx.print(toJson({ ip, removed, forgotten: forget && removed }));
      return 0;
    }
    // Like `rm -f`: lifting a ban that is not there is not an error, so scripts can repeat it.
    ctx.print(removed ? `unbanned ${ip}${forget ? " and forgot its offences" : ""}` : `${ip} was not banned; nothing changed`);
    return 0;
  },
};
