import type { Queryable } from "../db/pool.ts";
import { errorMessage } from "../errors.ts";

// /readyz: ready only when the database answers now and the worker takes jobs. The
// heartbeat's view (DatabaseHealth) alone lags by up to a heartbeat, so the database is
// asked too, with a short timeout: a pool waiting out an outage must not hang the probe.

export const READINESS_TIMEOUT_MS = 2000;

export interface ReadinessSources {
  db: Queryable;
  /** Since when the node's heartbeat has failed (DatabaseHealth.downSince); null when it beats. */
  databaseDownSince(): number | null;
  /** Why the worker takes no jobs (starting, stopping, stopped); null while it runs. */
  workerProblem(): string | null;
  timeoutMs?: number;
}

export interface Readiness {
  ready: boolean;
  /** What is wrong, for a person reading the probe's answer; empty when ready. */
  problems: string[];
}

export async function checkReadiness(sources: ReadinessSources): Promise<Readiness> {
  const problems: string[] = [];
  const worker = sources.workerProblem();
  if (worker) problems.push(worker);
  const downSince = sources.databaseDownSince();
  if (downSince !== null) problems.push(`the heartbeat has not reached the database for ${Math.round((Date.now() - downSince) / 1000)} s`);
  const timeoutMs = sources.timeoutMs ?? READINESS_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      sources.db.query("select 1"),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs))),
    ]);
  } catch (error) {
    problems.push(`the database does not answer: ${errorMessage(error)}`);
  } finally {
    clearTimeout(timer);
  }
  return { ready: problems.length === 0, problems };
}
