import { cleanupEmptyContexts } from "../src/jobs/cleanup_empty_contexts/index.ts";

export default cleanupEmptyContexts.task;
