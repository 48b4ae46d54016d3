import crypto from "node:crypto";
import type http from "node:http";
import { HttpProblem } from "./types.ts";

// Who may use the actions (POST /api/actions/*). The token travels only in an
// `Authorization: Bearer` header that the page adds from sessionStorage: a browser never
// attaches it by itself (no cookie), so another site cannot borrow an operator's session.
// Cross-site requests are refused besides (Sec-Fetch-Site, Origin), and only JSON bodies are
// read, which no HTML form can send.

export const ACTIONS_OFF_HINT = "set SCHEDULER_HTTP_TOKEN (16 or more random characters, e.g. `openssl rand -hex 24`) on this node and restart it; then present the token";

/** Same length and time whatever the guess: both sides are hashed before comparing. */
export function tokensMatch(presented: string, expected: string): boolean {
  const a = crypto.createHash("sha256").update(presented).digest();
  const b = crypto.createHash("sha256").update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

function crossSite(request: http.IncomingMessage): string | null {
  const site = request.headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none") return `Sec-Fetch-Site is '${site}'`;
  const origin = request.headers.origin;
  if (origin === undefined) return null;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return `Origin '${origin}' is not a URL`;
  }
  return host === request.headers.host ? null : `Origin ${origin} is not this endpoint (${request.headers.host ?? "no Host header"})`;
}

/** Refuses an action request that may not act; returns nothing when it may. */
export function checkActionRequest(request: http.IncomingMessage, token: string | null): void {
  if (token === null) throw new HttpProblem(403, "actions are off: this node has no SCHEDULER_HTTP_TOKEN, so its endpoint is read-only", ACTIONS_OFF_HINT);
  const cross = crossSite(request);
  if (cross) throw new HttpProblem(403, `cross-site request refused: ${cross}`, "use the dashboard served by this node");
  const type = (request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") throw new HttpProblem(415, `an action's body must be JSON (Content-Type: application/json), got '${type || "none"}'`);
  const header = request.headers.authorization ?? "";
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) throw new HttpProblem(401, "no token presented: actions need an `Authorization: Bearer <token>` header", "enter this node's SCHEDULER_HTTP_TOKEN in the dashboard (it is kept for this tab only)");
  if (!tokensMatch(match[1]!, token)) throw new HttpProblem(401, "wrong token: it is not this node's SCHEDULER_HTTP_TOKEN", "enter the token again");
}

const MAX_BODY_BYTES = 16 * 1024;

/** The request's JSON object body (at most 16 kB). */
export async function readJsonBody(request: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpProblem(413, `the body is over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
  } catch (error) {
    throw new HttpProblem(400, `the body is not valid JSON: ${(error as Error).message}`, `e.g. {"job": "database_cleanup"}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new HttpProblem(400, "the body must be a JSON object", `e.g. {"job": "database_cleanup"}`);
  return value as Record<string, unknown>;
}
