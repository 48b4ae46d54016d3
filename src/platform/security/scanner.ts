import {
  CONFIG_FILE_PATTERN,
  PROC_ENTRIES,
  SCANNER_EXTENSIONS,
  SCANNER_PATH_SEGMENTS,
  SCANNER_PATH_SEQUENCES,
  SCANNER_USER_AGENT_PREFIXES,
  SCANNER_USER_AGENT_TOKENS,
  SENSITIVE_DIRECTORIES,
  SENSITIVE_FILE_NAMES,
  SENSITIVE_NAME_PREFIXES,
  SYS_ENTRIES,
} from "./scanner-lists.ts";

// Is this request a vulnerability scanner's? A pure function of the request path and the
// User-Agent header, for the platform to set user_sessions.is_scanner at request time
// (malicious_ip_blacklist bans an IP with 3 scanner sessions in 24 hours).
//
// Rules, in order (the first match is reported):
//   path_traversal      a ".." segment (browsers resolve them before sending)
//   sensitive_file      hidden files (.env, .git/config, .aws/credentials; not .well-known), credentials,
//                       configs, dumps, build folders (wp-config.php, docker-compose.yml, node_modules, …)
//   scanner_path        admin panels and probe targets (/wp-admin, /phpmyadmin, /cgi-bin, …), whole segments only
//   scanner_extension   .php .sql .bak .env .zip … (the platform serves none of these)
//   missing_user_agent  no User-Agent, or only spaces
//   short_user_agent    fewer than 10 characters
//   bare_mozilla        exactly "Mozilla/5.0"
//   scanner_user_agent  a scanner's name: sqlmap, nikto, nmap, masscan, zgrab, nuclei, wpscan, …
//   outdated_browser    Chrome < 90 or Firefox < 88 (scanners ship stale browser strings)
// Generic HTTP clients (curl, wget, python-requests, Go-http-client, okhttp, axios) are NOT
// scanners here: the platform's API clients use them, and the platform counts them as bots.

export type ScannerRule =
  | "path_traversal"
  | "sensitive_file"
  | "scanner_path"
  | "scanner_extension"
  | "missing_user_agent"
  | "short_user_agent"
  | "bare_mozilla"
  | "scanner_user_agent"
  | "outdated_browser";

export interface ScannerVerdict {
  isScanner: boolean;
  /** The first rule that matched, or null. */
  rule: ScannerRule | null;
  /** What matched: the path element, extension or user-agent token. */
  match: string | null;
}

export interface ScannerClassifierOptions {
  /**
   * Path prefixes the platform serves itself (e.g. "/admin" for its own admin UI): the
   * scanner_path and scanner_extension rules skip them; hidden files and ".." still count.
   */
  allowPathPrefixes?: string[];
  /** More user-agent tokens to treat as scanners (case-insensitive, whole words). */
  extraUserAgentTokens?: string[];
  /** Flag Chrome < 90 and Firefox < 88 (default true, as the original did). */
  flagOutdatedBrowsers?: boolean;
}

const NOT_A_SCANNER: ScannerVerdict = { isScanner: false, rule: null, match: null };
const MIN_USER_AGENT_LENGTH = 10;

const isWordChar = (char: string | undefined) => char !== undefined && /[a-z0-9]/.test(char);

/**
 * Finds the first token in a lower-case user agent. Tokens match whole words only (so "zap"
 * is not found in "Zapier", nor "vega" in "LasVegas"): one-word tokens by a set lookup of the
 * agent's words, the few tokens with punctuation by substring search with the same edges.
 */
function tokenMatcher(tokens: readonly string[]): (userAgent: string) => string | null {
  const words = new Set<string>();
  const phrases: string[] = [];
  for (const token of tokens.map((t) => t.toLowerCase())) {
    if (/^[a-z0-9]+$/.test(token)) words.add(token);
    else phrases.push(token);
  }
  return (userAgent) => {
    for (const word of userAgent.split(/[^a-z0-9]+/)) if (words.has(word)) return word;
    for (const phrase of phrases) {
      for (let at = userAgent.indexOf(phrase); at !== -1; at = userAgent.indexOf(phrase, at + 1)) {
        const startsClean = !isWordChar(phrase[0]) || !isWordChar(userAgent[at - 1]);
        const endsClean = !isWordChar(phrase.at(-1)) || !isWordChar(userAgent[at + phrase.length]);
        if (startsClean && endsClean) return phrase;
      }
    }
    return null;
  };
}

/** The path's segments, lower case, after decoding percent escapes (twice: scanners double-encode). */
function pathSegments(path: string): string[] {
  let text = path.split(/[?#]/, 1)[0] ?? "";
  for (let i = 0; i < 2 && text.includes("%"); i++) {
    try {
      text = decodeURIComponent(text);
    } catch {
      break;
    }
  }
  return text.replace(/\\/g, "/").toLowerCase().split("/").filter((segment) => segment.length > 0);
}

function extensionOf(segment: string): string | null {
  const dot = segment.lastIndexOf(".");
  return dot > 0 && dot < segment.length - 1 ? segment.slice(dot + 1) : null;
}

/** Which sensitive file or folder a segment names, if any; `next` is the segment after it. */
function sensitiveName(segment: string, next: string | undefined): string | null {
  if (segment.startsWith(".") && segment !== ".well-known") return segment;
  if (SENSITIVE_FILE_NAMES.has(segment) || SENSITIVE_DIRECTORIES.has(segment) || CONFIG_FILE_PATTERN.test(segment)) return segment;
  if (segment.includes(".sql.")) return segment; // compressed database dumps: dump.sql.gz, db.sql.7z
  const prefix = SENSITIVE_NAME_PREFIXES.find((p) => segment.startsWith(p));
  if (prefix) return prefix;
  if (next !== undefined && ((segment === "proc" && (PROC_ENTRIES.has(next) || /^\d+$/.test(next))) || (segment === "sys" && SYS_ENTRIES.has(next)))) {
    return `${segment}/${next}`;
  }
  return null;
}

const PATH_SEQUENCES_DELIMITED = SCANNER_PATH_SEQUENCES.map((sequence) => `/${sequence}/`);

function classifyPath(segments: string[], ownPath: boolean): ScannerVerdict | null {
  if (segments.includes("..")) return { isScanner: true, rule: "path_traversal", match: ".." };
  for (let i = 0; i < segments.length; i++) {
    const name = sensitiveName(segments[i]!, segments[i + 1]);
    if (name) return { isScanner: true, rule: "sensitive_file", match: name };
  }
  if (ownPath) return null;
  const joined = `/${segments.join("/")}/`;
  const sequence = PATH_SEQUENCES_DELIMITED.findIndex((s) => joined.includes(s));
  if (sequence !== -1) return { isScanner: true, rule: "scanner_path", match: SCANNER_PATH_SEQUENCES[sequence]! };
  const named = segments.find((segment) => SCANNER_PATH_SEGMENTS.has(segment));
  if (named) return { isScanner: true, rule: "scanner_path", match: named };
  const last = segments.at(-1);
  const extension = last ? extensionOf(last) : null;
  if (extension && SCANNER_EXTENSIONS.has(extension)) return { isScanner: true, rule: "scanner_extension", match: `.${extension}` };
  return null;
}

const CHROME_VERSION = /chrome\/(\d+)/;
const FIREFOX_VERSION = /firefox\/(\d+)/;

function majorVersion(userAgent: string, pattern: RegExp): number | null {
  const match = pattern.exec(userAgent);
  return match ? Number(match[1]) : null;
}

/** Builds a classifier; `classifyRequest` below is the one with default options. */
export function createScannerClassifier(options: ScannerClassifierOptions = {}): (path: string | null | undefined, userAgent: string | null | undefined) => ScannerVerdict {
  const findToken = tokenMatcher([...SCANNER_USER_AGENT_TOKENS, ...(options.extraUserAgentTokens ?? [])]);
  const allowed = (options.allowPathPrefixes ?? []).map((prefix) => pathSegments(prefix));
  const flagOutdated = options.flagOutdatedBrowsers ?? true;

  const isAllowedPath = (segments: string[]) =>
    allowed.some((prefix) => prefix.length > 0 && prefix.every((segment, i) => segments[i] === segment));

  return function classify(path, userAgent) {
    const segments = pathSegments(path ?? "");
    const byPath = classifyPath(segments, isAllowedPath(segments));
    if (byPath) return byPath;
    const ua = (userAgent ?? "").trim();
    if (ua.length === 0) return { isScanner: true, rule: "missing_user_agent", match: null };
    if (ua.length < MIN_USER_AGENT_LENGTH) return { isScanner: true, rule: "short_user_agent", match: ua };
    if (ua === "Mozilla/5.0") return { isScanner: true, rule: "bare_mozilla", match: ua };
    const lower = ua.toLowerCase();
    const token = findToken(lower) ?? SCANNER_USER_AGENT_PREFIXES.find((prefix) => lower.startsWith(prefix));
    if (token) return { isScanner: true, rule: "scanner_user_agent", match: token };
    if (flagOutdated) {
      const chrome = majorVersion(lower, CHROME_VERSION);
      if (chrome !== null && chrome < 90) return { isScanner: true, rule: "outdated_browser", match: `chrome/${chrome}` };
      const firefox = majorVersion(lower, FIREFOX_VERSION);
      if (firefox !== null && firefox < 88) return { isScanner: true, rule: "outdated_browser", match: `firefox/${firefox}` };
    }
    return NOT_A_SCANNER;
  };
}

/** The default classifier: the original's rules plus the OWASP CRS-derived lists. */
export const classifyRequest = createScannerClassifier();

/** True when the request looks like a vulnerability scanner's (see classifyRequest for why). */
export function isScannerRequest(path: string | null | undefined, userAgent: string | null | undefined): boolean {
  return classifyRequest(path, userAgent).isScanner;
}
