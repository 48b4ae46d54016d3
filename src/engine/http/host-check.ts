import net from "node:net";
import os from "node:os";
import type { HttpAddress } from "./address.ts";

// DNS rebinding: a page on evil.example re-points its name at 127.0.0.1 (or at this node's
// address) and reads the answers, which the browser treats as evil.example's own. What gives
// it away is the Host header: it still says evil.example. So a request is served only when
// its Host names this endpoint: `localhost`, a loopback address, an address of this machine
// (the one the connection came in on, or any interface's when bound beyond loopback), the
// bound name, or a name listed in SCHEDULER_HTTP_ALLOWED_HOSTS (a Kubernetes service, a
// proxy's name). The port is not compared: an attacker controls the name, not the port, and
// an IP literal cannot be rebound.

export interface HostPolicy {
  /** Names and addresses besides this machine's own (SCHEDULER_HTTP_ALLOWED_HOSTS), lower case. */
  allowed: ReadonlySet<string>;
  /** This machine's interface addresses, read when the endpoint started (bound beyond loopback). */
  ownAddresses: ReadonlySet<string>;
  boundHost: string;
}

/** `name` as compared: lower case, no trailing dot, IPv6 without brackets, IPv4-mapped IPv6 as IPv4. */
export function normalizeHost(name: string): string {
  let host = name.trim().toLowerCase();
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (host.startsWith("::ffff:") && net.isIPv4(host.slice(7))) host = host.slice(7);
  return host;
}

/** The host part of a Host header value (`name:port`, `[v6]:port`, `name`); null when malformed. */
export function hostOfHeader(header: string): string | null {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+)(?::\d{1,5})?$/.exec(header.trim());
  return match ? normalizeHost(match[1]!) : null;
}

function isLoopbackAddress(host: string): boolean {
  return host === "::1" || (net.isIPv4(host) && host.startsWith("127."));
}

export function hostPolicy(bound: HttpAddress, allowedHosts: readonly string[]): HostPolicy {
  const boundHost = normalizeHost(bound.host);
  const ownAddresses = new Set<string>();
  if (!isLoopbackAddress(boundHost) && boundHost !== "localhost") {
    for (const list of Object.values(os.networkInterfaces())) for (const entry of list ?? []) ownAddresses.add(normalizeHost(entry.address));
  }
  return { allowed: new Set(allowedHosts.map(normalizeHost)), ownAddresses, boundHost };
}

/**
 * Whether a request with this Host header may be served; `localAddress` is the address the
 * connection came in on. No Host header at all is let through: every browser sends one.
 */
export function hostAllowed(policy: HostPolicy, header: string | undefined, localAddress: string | undefined): boolean {
  if (header === undefined) return true;
  const host = hostOfHeader(header);
  if (host === null) return false;
  if (host === "localhost" || isLoopbackAddress(host) || host === policy.boundHost || policy.allowed.has(host)) return true;
  if (!net.isIP(host)) return false;
  return policy.ownAddresses.has(host) || (localAddress !== undefined && normalizeHost(localAddress) === host);
}
