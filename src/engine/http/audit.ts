import { listAudit } from "../audit/trail.ts";
import type { Queryable } from "../db/pool.ts";
import { HttpProblem, type ApiHandler } from "./types.ts";

// GET /api/audit?limit=N[&target=T]: the latest rows of the audit trail, newest first (the
// dashboard's Audit panel). Read-only, like the rest of /api/.

export const AUDIT_DEFAULT_LIMIT = 20;
export const AUDIT_MAX_LIMIT = 200;

export function auditApi(db: Queryable): ApiHandler {
  return async ({ query }) => {
    const text = query.get("limit");
    const limit = text === null ? AUDIT_DEFAULT_LIMIT : Number(text);
    if (!Number.isInteger(limit) || limit < 1 || limit > AUDIT_MAX_LIMIT) throw new HttpProblem(400, `limit must be a whole number from 1 to ${AUDIT_MAX_LIMIT}, got '${text}'`);
    const target = query.get("target");
    if (target !== null && target.length > 500) throw new HttpProblem(400, "target must be at most 500 characters");
    return listAudit(db, { target: target || null, limit });
  };
}
