// The syntax of service names and environment keys, checked the same way by the CLI when a
// service is added and by each host before it starts one: a row written in SQL gets no
// other check. A name becomes a log file name, so it holds no '/' and cannot be '..'.

export const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
export const SERVICE_NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100";

/** A variable name as a shell takes it: the kernel splits an environment entry at its first '=' only. */
export const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const ENV_KEY_RULE = "letters, digits and '_', not starting with a digit";

/** The reconciler's markers (SYSTEMPROMPT_SERVICE, _INSTANCE, _HOST): never a row's to set. */
export const RESERVED_ENV_PREFIX = "SYSTEMPROMPT_SERVICE";

/** A key or name as a person reads it in a message: quoted, escaped, cut when long. */
export function shown(text: string): string {
  const quoted = JSON.stringify(text);
  return quoted.length > 100 ? `${quoted.slice(0, 96)}..."` : quoted;
}
