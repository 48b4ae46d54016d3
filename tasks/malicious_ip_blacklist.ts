import { maliciousIpBlacklist } from "../src/platform/jobs/malicious_ip_blacklist/index.ts";

export default maliciousIpBlacklist.task;
