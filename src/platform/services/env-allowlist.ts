// Which environment variables a row's `env` may set on this host: SCHEDULER_SERVICES_ALLOWED_ENV
// (or the `env:` lines of the allowlist file). An allowlist, because no list of refused names
// is ever complete: LD_PRELOAD and NODE_OPTIONS are known, but PYTHONWARNINGS with BROWSER,
// OPENSSL_CONF, HOME, PERL5DB, GIT_*, PHPRC, DOTNET_STARTUP_HOOKS... each make some allowed
// program load or run other code, and every new runtime adds more. Empty: a row may set none
// (the service still gets PORT, the reconciler's markers and what it inherits from the node).
import { ENV_KEY, ENV_KEY_RULE, RESERVED_ENV_PREFIX, shown } from "./names.ts";

export const ENV_ALLOWLIST_VARIABLE = "SCHEDULER_SERVICES_ALLOWED_ENV";

/** A prefix pattern: a name ending in '_', then '*' (MYAPP_*). A lone '*' or 'A*' would allow too much by accident. */
const PREFIX_PATTERN = /^[A-Za-z][A-Za-z0-9_]*_\*$/;

/** Parses a comma-separated list of variable names and prefix patterns; one problem per bad item. */
export function parseEnvAllowlist(text: string, first = 1): { env: string[]; problems: string[] } {
  const env: string[] = [];
  const problems: string[] = [];
  for (const [i, raw] of text.split(",").entries()) {
    const item = raw.trim();
    const n = first + i;
    if (item === "") problems.push(`env item ${n} is empty (a doubled or trailing comma?)`);
    else if (ENV_KEY.test(item) || PREFIX_PATTERN.test(item)) env.push(item);
    else problems.push(`env item ${n} ${shown(item)} is neither a variable name (${ENV_KEY_RULE}) nor a prefix ending in _* such as MYAPP_*`);
  }
  return { env, problems };
}

export function envKeyAllowed(allowed: readonly string[], key: string): boolean {
  return allowed.some((item) => (item.endsWith("*") ? key.startsWith(item.slice(0, -1)) : key === item));
}

const list = (keys: string[]) => keys.map(shown).join(", ");
const plural = (keys: string[], one: string, many: string) => (keys.length > 1 ? many : one);

/**
 * Why a row's `env` may not be set on this host, or null. `file` is the allowlist file when
 * the host's lists come from one (its env: lines are then the list), for the fix.
 */
export function envRefusal(env: Record<string, unknown>, allowed: readonly string[], file: string | null): { refusal: string; fix: string } | null {
  const keys = Object.keys(env);
  const invalid = keys.filter((key) => !ENV_KEY.test(key));
  if (invalid.length > 0) {
    return {
      refusal: `env ${plural(invalid, "key", "keys")} ${list(invalid)} ${plural(invalid, "is not a valid variable name", "are not valid variable names")} (${ENV_KEY_RULE}), so the row is refused on every host`,
      fix: `correct or remove ${plural(invalid, "it", "them")} in the service's env`,
    };
  }
  const reserved = keys.filter((key) => key.startsWith(RESERVED_ENV_PREFIX));
  if (reserved.length > 0) {
    return {
      refusal: `env ${plural(reserved, "key", "keys")} ${list(reserved)} ${plural(reserved, "is", "are")} reserved for the reconciler's own markers`,
      fix: `remove ${plural(reserved, "it", "them")} from the service's env`,
    };
  }
  const refused = keys.filter((key) => !envKeyAllowed(allowed, key));
  if (refused.length === 0) return null;
  const where = file ? `an env: line of ${file}` : ENV_ALLOWLIST_VARIABLE;
  return {
    refusal: `env ${plural(refused, "key", "keys")} ${list(refused)} ${plural(refused, "is", "are")} not allowed on this host (${allowed.length === 0 ? `${file ? `${file} has no env: line` : `${ENV_ALLOWLIST_VARIABLE} is not set`}, so a row may set no variable` : `not listed in ${where}`})`,
    fix: `add ${refused.join(", ")} to ${where}${file ? "" : " (or, with SCHEDULER_SERVICES_ALLOWED_COMMANDS_FILE, to an env: line of that file)"} on this host and restart its scheduler, or remove ${plural(refused, "it", "them")} from the service's env`,
  };
}
