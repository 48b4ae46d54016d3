// What the platform imports from the scheduler's security module.
export { classifyRequest, createScannerClassifier, isScannerRequest } from "./scanner.ts";
export type { ScannerClassifierOptions, ScannerRule, ScannerVerdict } from "./scanner.ts";
export { banIp, listBans, removeExpiredBans, unbanIp, BAN_OUTCOMES } from "./bans.ts";
export type { BanOutcome, BanResult, BanRow, ManualBan } from "./bans.ts";
export { parseCidr, parseIp } from "./ip.ts";
export { parseDuration } from "./duration.ts";
