import type { Queryable } from "../../src/engine/db/pool.ts";
import { detectSql, maliciousIpBlacklist, settingsFor, type Payload } from "../../src/platform/jobs/malicious_ip_blacklist/index.ts";

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  Plans?: PlanNode[];
}

function scansOf(node: PlanNode, relation: string): number {
  const own = node["Relation Name"] === relation && /Scan/.test(node["Node Type"]) ? 1 : 0;
  return own + (node.Plans ?? []).reduce((sum, child) => sum + scansOf(child, relation), 0);
}

/**
 * How many times the job's statement reads user_sessions, from EXPLAIN (which does not run
 * it): the job promises one pass over the sessions, not one per rule as the original did.
 */
export async function sessionScansInPlan(db: Queryable, payload: Record<string, unknown> = {}): Promise<number> {
  const parsed = maliciousIpBlacklist.schema.parse(payload) as Payload;
  const { rows } = await db.query<{ "QUERY PLAN": { Plan: PlanNode }[] }>(`explain (format json) ${detectSql}`, [JSON.stringify(settingsFor(parsed))]);
  return scansOf(rows[0]!["QUERY PLAN"][0]!.Plan, "user_sessions");
}
