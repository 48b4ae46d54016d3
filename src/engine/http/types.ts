// The shapes shared by the HTTP endpoint, its JSON API and the packs that add to it
// (SchedulerPack.http). Types only, so that pack.ts can name them without importing the server.

/** A GET handler under /api/: the query string, and the `:id` of a `name/:id` route. */
export type ApiHandler = (request: { query: URLSearchParams; id?: string }) => Promise<unknown>;

/** An answer already serialized (large JSON assembled from PostgreSQL's own JSON text), sent as is. */
export class JsonText {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/** A refusal or a missing thing, answered with its status and a JSON `{error, hint?}`. */
export class HttpProblem extends Error {
  readonly status: number;
  readonly hint?: string;
  constructor(status: number, message: string, hint?: string) {
    super(message);
    this.status = status;
    this.hint = hint;
  }
}

/** A column of a pack's dashboard panel: `key` of each row; `kind` says how to show it. */
export interface PanelColumn {
  key: string;
  label: string;
  kind?: "text" | "number" | "time" | "status";
}

/**
 * A panel a pack adds to the dashboard (the platform's services and bans). The page draws it
 * from its API endpoint's answer, `{ summary?: {label, value}[], rows: object[] }`, without
 * knowing what it shows.
 */
export interface DashboardPanel {
  id: string;
  title: string;
  /** Its endpoint: GET /api/<api>, contributed by the same pack. */
  api: string;
  columns: PanelColumn[];
  /** Rows are shown in groups by this column (e.g. services per host). */
  groupBy?: string;
  /** What the panel says when there are no rows. */
  empty: string;
}

export interface PanelData {
  summary?: { label: string; value: string | number }[];
  rows: Record<string, unknown>[];
}

/** What a pack adds to every node's HTTP endpoint. */
export interface PackHttp {
  api: Record<string, ApiHandler>;
  panels: DashboardPanel[];
}
