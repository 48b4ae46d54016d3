// libpq connection strings, multi-host included, which node-postgres cannot read (its URL parser
// says "Invalid URL" at the first comma). We parse them here and render one single-host URL per
// host for pg; the connector tries the hosts in order, as libpq does. Pure: no I/O, no pg.
//
// Deliberate differences from libpq, all for compatibility with what pg reads today:
// unknown keywords are kept (pg understands ssl=true, sslmode=no-verify, uselibpqcompat); in URL
// query values "+" means a space and raw spaces are allowed (URLSearchParams); the user info ends
// at the last "@" before the path or query (WHATWG URL), not at the first "@"; URL schemes are
// case-insensitive. A host without a port gets PGPORT (when it is one port) or 5432.

export type TargetSessionAttrs = "any" | "read-write" | "read-only" | "primary" | "standby" | "prefer-standby";
const SESSION_ATTRS: readonly string[] = ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"];

/** host: a name, an IPv4, an IPv6 without brackets, or a Unix-socket directory (starts with "/"). */
export interface HostAddress {
  host: string;
  port: number;
}

export interface ConnectionSpec {
  /** At least one, in the order given. */
  hosts: HostAddress[];
  database?: string;
  user?: string;
  password?: string;
  /** "any" (libpq's default) unless the string or PGTARGETSESSIONATTRS says otherwise. */
  targetSessionAttrs: TargetSessionAttrs;
  /** Every other libpq parameter given (sslmode, application_name, connect_timeout, options, sslrootcert, keepalives, ...), by keyword, values decoded. */
  params: Record<string, string>;
}

/** Input that cannot be read. `problem` is the message without the label; neither ever holds the password. */
export class ConnectionStringError extends Error {
  readonly problem: string;
  constructor(problem: string, label: string) {
    super(label ? `${label}: ${problem}` : problem);
    this.name = "ConnectionStringError";
    this.problem = problem;
  }
}

type Env = Record<string, string | undefined>;
type Fail = (problem: string) => never;

const SCHEME = /^([a-z][a-z0-9+.-]*):/i;
const SECRET_KEY = /password/i; // password, sslpassword

/** True when text is a keyword/value string (no scheme, and an "="), libpq's own test. */
export function isKeywordForm(text: string): boolean {
  const trimmed = text.trim();
  return !SCHEME.test(trimmed) && trimmed.includes("=");
}

/** Reads a libpq connection string, URL or keyword/value form; `env` supplies the libpq fallbacks for what the string leaves out. */
export function parseConnectionString(text: string, options: { env?: Env; label?: string } = {}): ConnectionSpec {
  const label = options.label ?? "DATABASE_URL";
  const fail: Fail = (problem) => {
    throw new ConnectionStringError(problem, label);
  };
  const trimmed = text.trim();
  if (trimmed === "") fail("the connection string is empty");
  const raw = SCHEME.test(trimmed) ? readUrl(trimmed, fail) : readKeywords(trimmed, fail);
  return resolve(raw, options.env ?? process.env, fail);
}

// libpq's strict decoding: a "%" must start two hex digits, and %00 would end a C string.
function decode(text: string, what: string, fail: Fail, secret = false): string {
  const bad = () => fail(`bad percent-encoding in ${what}${secret ? "" : ` ("${text}")`}`);
  if (/%(?![0-9a-f]{2})|%00/i.test(text)) bad();
  try {
    return decodeURIComponent(text);
  } catch {
    return bad(); // not UTF-8
  }
}

function readUrl(text: string, fail: Fail): Map<string, string> {
  const scheme = /^(postgres|postgresql):\/\//i.exec(text);
  if (!scheme) {
    const name = SCHEME.exec(text)?.[1] ?? "";
    if (/^postgres(ql)?$/i.test(name)) fail(`"${name}:" must be followed by "//" (postgres://host/database)`);
    fail(`unknown scheme "${name}:" (expected postgres:// or postgresql://)`);
  }
  const raw = new Map<string, string>();
  const rest = text.slice(scheme[0].length);
  const end = rest.search(/[/?]/);
  let authority = end < 0 ? rest : rest.slice(0, end);
  const after = rest.slice(authority.length);
  const at = authority.lastIndexOf("@");
  // An unencoded "/" or "?" in a password ends the host part early, leaving "user:pass" where
  // "host:port" belongs: say so rather than echo the password as a bad port.
  if (at < 0 && after.includes("@") && /^[^:,[\]]*:(?!\d*$)[^,]*$/.test(authority)) fail(`"@" after the host part: percent-encode "/", "?" and "@" in the user name and password (%2F, %3F, %40)`);
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    authority = authority.slice(at + 1);
    const colon = userinfo.indexOf(":");
    const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
    const password = colon < 0 ? "" : userinfo.slice(colon + 1);
    if (user) raw.set("user", decode(user, "the user name", fail));
    if (password) raw.set("password", decode(password, "the password", fail, true));
  }
  const items = authority.split(",");
  const hosts: string[] = [];
  const ports: string[] = [];
  items.forEach((item, i) => {
    const where = `host ${i + 1} ("${item}")`;
    let host = item;
    let port = "";
    if (item.startsWith("[")) {
      const close = item.indexOf("]");
      if (close < 0) fail(`${where} has "[" without a closing "]"`);
      host = item.slice(1, close);
      const tail = item.slice(close + 1);
      if (host === "") fail(`${where} has an empty IPv6 address`);
      if (tail !== "" && !tail.startsWith(":")) fail(`${where} has "${tail}" after "]" (expected ":port")`);
      port = tail.slice(1);
    } else {
      if (item.includes("]")) fail(`${where} has "]" without an opening "["`);
      if (item.split(":").length > 2) fail(`${where} looks like an IPv6 address: write it in brackets, e.g. [::1]:5432`);
      const colon = item.indexOf(":");
      if (colon >= 0) [host, port] = [item.slice(0, colon), item.slice(colon + 1)];
    }
    hosts.push(decode(host, `host ${i + 1}`, fail));
    ports.push(decode(port, `the port of host ${i + 1}`, fail));
  });
  // As libpq: a lone empty host is "not given" (env or default applies); an empty one in a list is an error later.
  if (hosts.length > 1 || hosts[0]) raw.set("host", hosts.join(","));
  if (ports.some((port) => port !== "")) raw.set("port", ports.join(","));
  const query = after.indexOf("?");
  const database = after.startsWith("/") ? after.slice(1, query < 0 ? undefined : query) : "";
  if (database) raw.set("dbname", decode(database, "the database name", fail));
  if (query >= 0) readQuery(after.slice(query + 1), raw, fail);
  return raw;
}

// "+" is a space, as for pg's URLSearchParams; later keys win, as in libpq.
function readQuery(query: string, raw: Map<string, string>, fail: Fail): void {
  query.split("&").forEach((pair, i) => {
    if (pair === "") return;
    const eq = pair.indexOf("=");
    const plain = (s: string) => s.replaceAll("+", " ");
    if (eq < 0) fail(`query parameter ${/^[\w.-]{1,40}$/.test(pair) ? `"${pair}"` : i + 1} has no "=" (expected key=value)`);
    const key = decode(plain(pair.slice(0, eq)), `query parameter ${i + 1}'s name`, fail, true);
    raw.set(key, decode(plain(pair.slice(eq + 1)), `query parameter "${key}"`, fail, SECRET_KEY.test(key)));
  });
}

interface Pair {
  key: string;
  value: string;
  /** Where the value is written in the text, quotes included. */
  start: number;
  end: number;
}

// libpq's conninfo_parse: key = value pairs split by whitespace; a value may be single-quoted;
// a backslash escapes the next character, quoted or not. Stops at the first error, saying where.
function scanKeywords(text: string): { pairs: Pair[]; error?: { at: number; problem: string } } {
  const pairs: Pair[] = [];
  const space = (c: string | undefined) => c !== undefined && /\s/.test(c);
  let i = 0;
  for (;;) {
    while (space(text[i])) i++;
    if (i >= text.length) return { pairs };
    const keyStart = i;
    while (i < text.length && text[i] !== "=" && !space(text[i])) i++;
    const key = text.slice(keyStart, i);
    while (space(text[i])) i++;
    const item = pairs.length + 1;
    if (text[i] !== "=") {
      const after = pairs.at(-1);
      if (!after) return { pairs, error: { at: keyStart, problem: `"${key.slice(0, 40)}" is neither a postgres:// URL nor key=value pairs` } };
      const what = SECRET_KEY.test(after.key) ? `item ${item} (after ${after.key}) has no "="` : `missing "=" after "${key.slice(0, 40)}" (item ${item})`;
      return { pairs, error: { at: keyStart, problem: `${what}; quote a value that holds spaces: key='a b'` } };
    }
    if (key === "") return { pairs, error: { at: keyStart, problem: `item ${item} has "=" without a keyword before it` } };
    i++;
    while (space(text[i])) i++;
    const start = i;
    let value = "";
    const quoted = text[i] === "'";
    if (quoted) i++;
    for (;;) {
      if (i >= text.length) {
        if (quoted) return { pairs, error: { at: start, problem: `the quoted value of ${key} is not terminated (a closing ' is missing)` } };
        break;
      }
      const c = text[i++] as string;
      if (c === "\\") value += text[i++] ?? "";
      else if (quoted && c === "'") break;
      else if (!quoted && space(c)) {
        i--;
        break;
      } else value += c;
    }
    pairs.push({ key, value, start, end: i });
  }
}

function readKeywords(text: string, fail: Fail): Map<string, string> {
  const { pairs, error } = scanKeywords(text);
  if (error) fail(error.problem);
  return new Map(pairs.map((pair) => [pair.key, pair.value]));
}

// The libpq defaults step, then the host/port lists: one port for all hosts, or one per host.
function resolve(raw: Map<string, string>, env: Env, fail: Fail): ConnectionSpec {
  const take = (key: string, envName?: string): [string | undefined, string] => {
    const value = raw.get(key);
    raw.delete(key);
    if (value) return [value, ""];
    const fallback = envName ? env[envName] : undefined;
    return fallback ? [fallback, ` (from ${envName})`] : [undefined, ""];
  };
  // hostaddr (libpq: a numeric address that skips name lookup) stands in for host when host is
  // absent; pg has no separate connect address, so beside a host it stays a plain param.
  const hostaddr = raw.get("hostaddr");
  if (!raw.get("host") && hostaddr) {
    raw.set("host", hostaddr);
    raw.delete("hostaddr");
  }
  const [hostList = "localhost", hostFrom] = take("host", "PGHOST");
  const names = hostList.split(",").map((name) => name.trim().replace(/^\[(.*)\]$/, "$1"));
  const empty = names.indexOf("");
  if (empty >= 0) fail(`host ${empty + 1} of "${hostList}"${hostFrom} is empty`);
  const [portList = "", portFrom] = take("port", "PGPORT");
  const ports = portList.split(",");
  if (ports.length !== 1 && ports.length !== names.length) {
    fail(`${ports.length} ports${portFrom} for ${names.length} hosts: give one port for all hosts, or one per host`);
  }
  const envPort = env.PGPORT?.trim();
  const readPort = (text: string, i: number, host: string, from: string): number => {
    const port = text.trim();
    if (port === "") return envPort && !envPort.includes(",") && !from ? readPort(envPort, i, host, " (from PGPORT)") : 5432;
    const where = `of host ${i + 1} (${host})${from}`;
    if (!/^\d+$/.test(port)) fail(`port "${port}" ${where} is not a number`);
    if (Number(port) < 1 || Number(port) > 65535) fail(`port ${port} ${where} is not between 1 and 65535`);
    return Number(port);
  };
  const hosts = names.map((host, i) => ({ host, port: readPort(ports[ports.length === 1 ? 0 : i] ?? "", i, host, portFrom) }));
  const [attrs = "any", attrsFrom] = take("target_session_attrs", "PGTARGETSESSIONATTRS");
  if (!SESSION_ATTRS.includes(attrs)) fail(`target_session_attrs "${attrs}"${attrsFrom} is not one of ${SESSION_ATTRS.join(", ")}`);
  const spec: ConnectionSpec = { hosts, targetSessionAttrs: attrs as TargetSessionAttrs, params: {} };
  const [database] = take("dbname", "PGDATABASE");
  const [user] = take("user", "PGUSER");
  const [password] = take("password", "PGPASSWORD");
  if (database !== undefined) spec.database = database;
  if (user !== undefined) spec.user = user;
  if (password !== undefined) spec.password = password;
  spec.params = Object.fromEntries(raw);
  return spec;
}

const bracketed = (host: string) => (host.includes(":") ? `[${host}]` : host);

/** A single-host postgres:// URL for one host of the spec, every param as a query parameter except target_session_attrs; pg-connection-string reads it back. */
export function urlForHost(spec: ConnectionSpec, host: HostAddress): string {
  const enc = encodeURIComponent;
  const credentials = spec.user || spec.password ? `${enc(spec.user ?? "")}${spec.password ? `:${enc(spec.password)}` : ""}@` : "";
  // pg decodes the host with decodeURIComponent (so a socket directory may be encoded) but the
  // database with decodeURI, which keeps ";:@&=+$," encoded: those go literally, legal in a path.
  // ("/", "?" and "#" in a database name cannot reach pg through a URL at all.)
  const database = spec.database ? `/${enc(spec.database).replace(/%(3B|3A|40|26|3D|2B|24|2C)/g, (e) => decodeURIComponent(e))}` : "";
  const query = Object.entries(spec.params)
    .filter(([key]) => key !== "target_session_attrs")
    .map(([key, value]) => `${enc(key)}=${enc(value)}`)
    .join("&");
  const name = host.host.includes(":") ? `[${host.host}]` : enc(host.host);
  return `postgres://${credentials}${name}:${host.port}${database}${query ? `?${query}` : ""}`;
}

/** The hosts as a person writes them, "h1:5432,[::1]:5433,/var/run/postgresql:5432", then "/db" when there is one. No credentials. */
export function describeSpec(spec: ConnectionSpec): string {
  const hosts = spec.hosts.map((h) => `${bracketed(h.host)}:${h.port}`).join(",");
  return spec.database ? `${hosts}/${spec.database}` : hosts;
}

/** The connection string with any password replaced by ***; best effort on unreadable input, never throws. */
export function maskConnectionString(text: string): string {
  try {
    return isKeywordForm(text) ? maskKeywords(text) : maskUrl(text);
  } catch {
    return "***";
  }
}

function maskKeywords(text: string): string {
  const { pairs, error } = scanKeywords(text);
  // Past an error we cannot tell values from keywords (an unquoted "a b" password): hide the rest.
  let masked = error ? `${text.slice(0, error.at)}***` : text;
  for (const pair of pairs.toReversed()) {
    if (SECRET_KEY.test(pair.key)) masked = `${masked.slice(0, pair.start)}***${masked.slice(pair.end)}`;
  }
  return masked;
}

function maskUrl(text: string): string {
  const head = /^\s*[a-z][a-z0-9+.-]*:\/\//i.exec(text)?.[0] ?? "";
  let rest = text.slice(head.length);
  // The user info ends at the last "@" before the query, or, when an unencoded "?" in the
  // password starts a "query" whose first pair has that "@" before any "=", at that "@".
  const query = rest.indexOf("?");
  let region = query < 0 ? rest : rest.slice(0, query);
  if (query >= 0) {
    const pair = rest.slice(query + 1).split("&")[0] ?? "";
    const at = pair.indexOf("@");
    if (at >= 0 && !pair.slice(0, at).includes("=")) region = rest.slice(0, query + 1 + at + 1);
  }
  const at = region.lastIndexOf("@");
  const colon = rest.slice(0, Math.max(at, 0)).indexOf(":");
  if (at > 0 && colon >= 0 && colon < at - 1) rest = `${rest.slice(0, colon + 1)}***${rest.slice(at)}`;
  const lenient = (s: string) => {
    try {
      return decodeURIComponent(s.replaceAll("+", " "));
    } catch {
      return s;
    }
  };
  rest = rest.replace(/([?&])([^&=?]*)=([^&]*)/g, (all, sep: string, key: string) => (SECRET_KEY.test(lenient(key)) ? `${sep}${key}=***` : all));
  return head + rest;
}
