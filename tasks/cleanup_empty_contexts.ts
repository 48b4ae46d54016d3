import { cleanupEmptyContexts } from "../src/platform/jobs/cleanup_empty_contexts/index.ts";

export default cleanupEmptyContexts.task;
