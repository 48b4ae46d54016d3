import { maliciousIpBlacklist } from "../src/jobs/malicious_ip_blacklist/index.ts";

export default maliciousIpBlacklist.task;
