import net from "node:net";
import { z } from "zod";

// IP and CIDR text checked before it reaches SQL, so a person gets a message naming the
// problem instead of a PostgreSQL cast error. PostgreSQL stays the authority on matching.

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

/** node:net accepts IPv6 zone ids ("fe80::1%eth0"); PostgreSQL's inet does not, and nor do we. */
const isAddress = (text: string) => !text.includes("%") && net.isIP(text) !== 0;

/** A single IPv4 or IPv6 host address (no prefix, no zone id), trimmed. */
export function parseIp(text: string): ParseResult<string> {
  const value = text.trim();
  if (!isAddress(value)) {
    return { ok: false, error: `'${text}' is not an IPv4 or IPv6 address (examples: 203.0.113.7, 2001:db8::7)` };
  }
  return { ok: true, value };
}

/** The address as a bit string of 32 or 128 bits, for checking host bits of a CIDR. */
function addressBits(address: string): string {
  if (net.isIPv4(address)) {
    return address
      .split(".")
      .map((octet) => Number(octet).toString(2).padStart(8, "0"))
      .join("");
  }
  // IPv6, possibly with "::" and an embedded IPv4 tail.
  let text = address;
  const v4Tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4Tail) {
    const octets = v4Tail[1]!.split(".").map(Number);
    text = `${text.slice(0, -v4Tail[1]!.length)}${((octets[0]! << 8) | octets[1]!).toString(16)}:${((octets[2]! << 8) | octets[3]!).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(tail === undefined ? 0 : missing).fill("0"), ...tailGroups];
  return groups.map((group) => parseInt(group, 16).toString(2).padStart(16, "0")).join("");
}

/**
 * A network in CIDR notation ("203.0.113.0/24", "2001:db8::/32"); a bare address means a
 * single host. Host bits must be zero, as PostgreSQL's `cidr` type requires.
 */
export function parseCidr(text: string): ParseResult<string> {
  const value = text.trim();
  const slash = value.indexOf("/");
  const address = slash === -1 ? value : value.slice(0, slash);
  const family = isAddress(address) ? net.isIP(address) : 0;
  if (family === 0) {
    return { ok: false, error: `'${text}' is not a CIDR range: '${address}' is not an IPv4 or IPv6 address (example: 203.0.113.0/24)` };
  }
  const width = family === 4 ? 32 : 128;
  if (slash === -1) return { ok: true, value: `${address}/${width}` };
  const prefixText = value.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > width) {
    return { ok: false, error: `'${text}' is not a CIDR range: the prefix length must be 0 to ${width}` };
  }
  const bits = addressBits(address);
  if (bits.slice(prefix).includes("1")) {
    return { ok: false, error: `'${text}' has bits set after the /${prefix} prefix; write the network address, e.g. ${networkOf(bits, prefix, family)}/${prefix}` };
  }
  return { ok: true, value: `${address}/${prefix}` };
}

function networkOf(bits: string, prefix: number, family: 4 | 6 | number): string {
  const masked = bits.slice(0, prefix).padEnd(bits.length, "0");
  if (family === 4) {
    return [0, 8, 16, 24].map((at) => parseInt(masked.slice(at, at + 8), 2)).join(".");
  }
  const groups = Array.from({ length: 8 }, (_, i) => parseInt(masked.slice(i * 16, i * 16 + 16), 2).toString(16));
  return groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
}

/** zod: a CIDR range, normalised; the message names the range and the fix. */
export const cidrSchema = z.string().transform((text, ctx) => {
  const parsed = parseCidr(text);
  if (!parsed.ok) {
    ctx.addIssue({ code: "custom", message: parsed.error });
    return z.NEVER;
  }
  return parsed.value;
});

/** zod: an ISO 3166-1 alpha-2 country code, upper-cased. */
export const countryCodeSchema = z
  .string()
  .regex(/^[A-Za-z]{2}$/, "a two-letter ISO 3166-1 country code, e.g. 'RU'")
  .transform((code) => code.toUpperCase());
