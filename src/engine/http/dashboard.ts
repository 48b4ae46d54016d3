import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// The dashboard's page: static files in dashboard/ beside this module (copied into
// dist/ by scripts/build.ts), read once. No build step and nothing from elsewhere: the page
// works offline, and the Content-Security-Policy allows this endpoint's own files only.

export interface Asset {
  contentType: string;
  body: Buffer;
}

const FILES: Record<string, { file: string; contentType: string }> = {
  "/": { file: "index.html", contentType: "text/html; charset=utf-8" },
  "/assets/dashboard.css": { file: "dashboard.css", contentType: "text/css; charset=utf-8" },
  "/assets/dashboard.js": { file: "dashboard.js", contentType: "text/javascript; charset=utf-8" },
  "/assets/access.js": { file: "access.js", contentType: "text/javascript; charset=utf-8" },
  "/assets/view.js": { file: "view.js", contentType: "text/javascript; charset=utf-8" },
};

const folder = path.join(path.dirname(fileURLToPath(import.meta.url)), "dashboard");
let loaded: Map<string, Asset> | null = null;

/** The asset served at `pathname`, or null. */
export function dashboardAsset(pathname: string): Asset | null {
  loaded ??= new Map(Object.entries(FILES).map(([route, { file, contentType }]) => [route, { contentType, body: fs.readFileSync(path.join(folder, file)) }]));
  return loaded.get(pathname) ?? null;
}

/**
 * Sent with every answer: scripts, styles and requests from this endpoint only, no inline
 * code, no framing, no forms posting elsewhere.
 */
export const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-resource-policy": "same-origin",
};
