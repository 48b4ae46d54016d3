import { cleanupInactiveSessions } from "../src/jobs/cleanup_inactive_sessions/index.ts";

export default cleanupInactiveSessions.task;
