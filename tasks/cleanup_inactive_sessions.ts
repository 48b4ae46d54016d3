import { cleanupInactiveSessions } from "../src/platform/jobs/cleanup_inactive_sessions/index.ts";

export default cleanupInactiveSessions.task;
