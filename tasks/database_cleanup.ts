import { databaseCleanup } from "../src/platform/jobs/database_cleanup/index.ts";

export default databaseCleanup.task;
