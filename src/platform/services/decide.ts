// The reconciler's decision table (docs/services.md), as data: desired status × runtime status → action.
// Pure: no clock, no database, no processes.
import type { DesiredStatus, Policy, RuntimeStatus, ServiceAction } from "./types.ts";

export const DECISION_TABLE: Readonly<Record<DesiredStatus, Readonly<Record<RuntimeStatus, ServiceAction>>>> = {
  enabled: {
    running: "none",
    starting: "none",
    stopped: "start",
    crashed: "restart",
    orphaned: "restart",
  },
  disabled: {
    running: "stop",
    starting: "stop",
    stopped: "cleanup-db",
    crashed: "cleanup-db",
    orphaned: "cleanup-process",
  },
};

export function decide(desired: DesiredStatus, runtime: RuntimeStatus): ServiceAction {
  return DECISION_TABLE[desired][runtime];
}

/** Delay before the next start after `failures` consecutive failures: base, doubling, capped. */
export function restartDelayMs(failures: number, policy: Pick<Policy, "backoffBaseMs" | "backoffMaxMs">): number {
  if (failures <= 0) return 0;
  // 2^(failures-1) overflows to Infinity for huge counts; min() caps it all the same
  return Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** Math.min(failures - 1, 60));
}
