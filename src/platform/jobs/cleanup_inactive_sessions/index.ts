import { z } from "zod";
import { readSql } from "../../../engine/db/sql-file.ts";
import { repeatInBatches } from "../../../engine/db/batch.ts";
import { defineJob } from "../../../engine/jobs/define.ts";

const closeIdle = readSql(import.meta.url, "close_idle_sessions.sql");
const countIdle = readSql(import.meta.url, "count_idle_sessions.sql");

export const cleanupInactiveSessions = defineJob({
  name: "cleanup_inactive_sessions",
  description: "Ends sessions with no activity for inactiveHours (default 1)",
  payload: {
    inactiveHours: z.number().positive().max(24 * 365).default(1),
    batchSize: z.number().int().min(1).max(100_000).default(5000),
  },
  async run({ db, payload, enforce, signal }) {
    if (!enforce) {
      const { rows } = await db.query<{ n: string }>(countIdle, [payload.inactiveHours]);
      const n = Number(rows[0]?.n ?? 0);
      return { itemsProcessed: n, itemsFailed: 0, message: `dry run: would end ${n} inactive session(s)`, details: { wouldEnd: n } };
    }
    const ended = await repeatInBatches(db, closeIdle, [payload.inactiveHours], { batchSize: payload.batchSize, signal });
    return { itemsProcessed: ended, itemsFailed: 0, message: `ended ${ended} inactive session(s)`, details: { ended } };
  },
});
