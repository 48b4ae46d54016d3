import net from "node:net";

// SCHEDULER_HTTP_ADDR: `host:port` (IPv6 in brackets: `[::1]:9464`), or `off`. Parsed when the
// settings are read, so a bad value refuses the node (exit 2) before it touches a database.

export const DEFAULT_HTTP_ADDR = "127.0.0.1:9464";

export interface HttpAddress {
  host: string;
  port: number;
}

/** The address, null for `off`, or a sentence saying what is wrong with `text`. */
export function parseHttpAddr(text: string): HttpAddress | null | { problem: string } {
  const value = text.trim();
  if (value === "off") return null;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(value);
  if (!match) return { problem: "host:port (e.g. 127.0.0.1:9464, 0.0.0.0:9464, [::1]:9464) or off" };
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  // Port 0: the OS picks a free one (tests; the handle's httpAddress tells which).
  if (port > 65535) return { problem: `port ${port} is out of range 0-65535` };
  if (match[1] && net.isIPv6(host) === false) return { problem: `${host} is not an IPv6 address` };
  return { host, port };
}

/** Whether only this machine can reach the address (loopback). */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

export function describeAddress(address: HttpAddress): string {
  return net.isIPv6(address.host) ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** A URL a person can open for the endpoint: a wildcard address is reached on this machine's loopback. */
export function dashboardUrl(address: HttpAddress): string {
  const host = address.host === "0.0.0.0" ? "127.0.0.1" : address.host === "::" ? "::1" : address.host;
  return `http://${describeAddress({ host, port: address.port })}/`;
}
