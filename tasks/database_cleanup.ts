import { databaseCleanup } from "../src/jobs/database_cleanup/index.ts";

export default databaseCleanup.task;
