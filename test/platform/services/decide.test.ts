import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decide, restartDelayMs } from "../../../src/platform/services/decide.ts";
import { observe as observeWith } from "../../../src/platform/services/observe.ts";
import { planService } from "../../../src/platform/services/plan.ts";
import type { ProcessInfo, ProcessTable } from "../../../src/platform/services/proc.ts";
import { DEFAULT_POLICY, type Policy, type ServiceRow } from "../../../src/platform/services/types.ts";

const BOOT = "boot-a";
const NOW = new Date("2025-01-01T12:00:00Z");

function service(overrides: Partial<ServiceRow> = {}): ServiceRow {
  return {
    name: "svc", module_name: "agent", host: "h", command: "node", args: [], cwd: null, env: {}, port: 8080,
    desired_status: "enabled", status: "stopped", pid: null, process_start_ticks: null, boot_id: null, instance_id: null,
    restart_count: 0, consecutive_failures: 0, last_exit_code: null, last_exit_signal: null, last_error: null,
    backoff_until: null, started_at: null, stopped_at: null, status_changed_at: new Date(NOW.getTime() - 1000), version: "1",
    ...overrides,
  };
}

function table(...processes: Partial<ProcessInfo>[]): ProcessTable {
  const byPid = new Map<number, ProcessInfo>();
  for (const p of processes) {
    const info = { pid: 4242, comm: "node", state: "S", ppid: 1, pgrp: p.pid ?? 4242, startTicks: "1000", ...p };
    byPid.set(info.pid, info);
  }
  return { bootId: BOOT, byPid };
}

const ours = { pid: 4242, process_start_ticks: "1000", boot_id: BOOT, instance_id: "i-1" };
/** The process at pid 4242 carries the markers spawn gave it (service svc, instance i-1). */
const observe = (row: ServiceRow, processes: ProcessTable, portOpen: boolean) => observeWith(row, processes, portOpen, () => ({ service: "svc", instance: "i-1" }));
const policy: Policy = { ...DEFAULT_POLICY, backoffBaseMs: 1000, backoffMaxMs: 300_000, maxRapidFailures: 3 };
const ctx = { now: NOW, policy, protectedPorts: new Set([5432]) };

describe("decision table (docs/services.md): one test per cell", () => {
  const cells = [
    ["enabled", "running", "none"],
    ["enabled", "starting", "none"],
    ["enabled", "stopped", "start"],
    ["enabled", "crashed", "restart"],
    ["enabled", "orphaned", "restart"],
    ["disabled", "running", "stop"],
    ["disabled", "starting", "stop"],
    ["disabled", "stopped", "cleanup-db"],
    ["disabled", "crashed", "cleanup-db"],
    ["disabled", "orphaned", "cleanup-process"],
  ] as const;
  for (const [desired, runtime, action] of cells) {
    it(`${desired} + ${runtime} -> ${action}`, () => assert.equal(decide(desired, runtime), action));
  }
});

describe("restart delay", () => {
  it("starts at the base, doubles, and stops at the cap", () => {
    const p = { backoffBaseMs: 1000, backoffMaxMs: 300_000 };
    assert.deepEqual([0, 1, 2, 3, 4, 8, 9, 10].map((n) => restartDelayMs(n, p)), [0, 1000, 2000, 4000, 8000, 128_000, 256_000, 300_000]);
    assert.equal(restartDelayMs(10_000, p), 300_000, "a huge count does not overflow past the cap");
  });
});

describe("observe", () => {
  it("running: our pid, same start time, port answers", () => {
    assert.equal(observe(service({ ...ours, status: "running" }), table({}), true).runtime, "running");
  });
  it("starting: ours and alive, port silent", () => {
    assert.equal(observe(service({ ...ours, status: "starting" }), table({}), false).runtime, "starting");
  });
  it("crashed: the row says running, the pid is gone", () => {
    const seen = observe(service({ ...ours, status: "running" }), table(), false);
    assert.equal(seen.runtime, "crashed");
    assert.equal(seen.processLost, true);
  });
  it("crashed, not running: the pid now belongs to a process with another start time", () => {
    const seen = observe(service({ ...ours, status: "running" }), table({ startTicks: "2000" }), false);
    assert.equal(seen.runtime, "crashed");
    assert.equal(seen.ours, null);
    assert.match(seen.detail, /another process/);
  });
  it("a pid reused by a process that listens on the port is orphaned, never ours", () => {
    assert.equal(observe(service({ ...ours, status: "running" }), table({ startTicks: "2000" }), true).runtime, "orphaned");
  });
  it("a pid from before a reboot is not ours, even with the same start time", () => {
    const seen = observe(service({ ...ours, boot_id: "boot-old", status: "running" }), table({}), false);
    assert.equal(seen.runtime, "crashed");
    assert.match(seen.detail, /rebooted/);
  });
  it("a zombie is not alive", () => {
    assert.equal(observe(service({ ...ours, status: "running" }), table({ state: "Z" }), false).runtime, "crashed");
  });
  it("orphaned: no process of ours, yet the port answers", () => {
    assert.equal(observe(service(), table(), true).runtime, "orphaned");
  });
  it("stopped: no process, port silent", () => {
    assert.equal(observe(service(), table(), false).runtime, "stopped");
    assert.equal(observe(service({ status: "stopped", pid: 4242 }), table(), false).runtime, "stopped", "a stopped row's dead pid is no crash");
  });
  it("pids that can never be ours (0, 1, negative, huge) are never treated as ours", () => {
    for (const pid of [0, 1, -1, 2_147_483_647, 4_294_967_295]) {
      const seen = observe(service({ ...ours, pid, status: "running" }), table({ pid, pgrp: pid }), false);
      assert.equal(seen.ours, null, `pid ${pid}`);
      assert.equal(seen.runtime, "crashed");
    }
  });

  it("the recorded identity without the service's markers is not ours: orphaned, and nothing touches it", () => {
    for (const [marker, found] of [
      [null, /its environment cannot be read/],
      [{ service: null, instance: null }, /it has no SYSTEMPROMPT_SERVICE_INSTANCE/],
      [{ service: "svc", instance: "i-2" }, /it has SYSTEMPROMPT_SERVICE=svc SYSTEMPROMPT_SERVICE_INSTANCE=i-2/],
      [{ service: "other", instance: "i-1" }, /it has SYSTEMPROMPT_SERVICE=other SYSTEMPROMPT_SERVICE_INSTANCE=i-1/],
    ] as const) {
      for (const desired of ["enabled", "disabled"] as const) {
        const row = service({ ...ours, desired_status: desired, status: "running" });
        const seen = observeWith(row, table({ comm: "sleep" }), false, () => marker);
        assert.equal(seen.ours, null);
        assert.equal(seen.runtime, "orphaned");
        assert.equal(seen.processLost, false, "not a crash either");
        assert.match(seen.notOurs ?? "", found);
        const plan = planService(row, seen, ctx);
        assert.equal(plan.action, "none", `${desired}: ${plan.tableAction} withheld`);
        assert.equal(plan.update?.status, "orphaned");
        assert.match(plan.update?.last_error ?? "", /^pid 4242 \(sleep\) has the pid, start time and boot the row records, but does not carry this service's instance marker .*nothing was signalled; if it is this service's process, stop it by hand/);
      }
    }
    const unrecorded = service({ ...ours, instance_id: null, status: "running" });
    assert.equal(observeWith(unrecorded, table({}), false, () => ({ service: "svc", instance: null })).runtime, "orphaned", "a row without an instance id proves nothing");
  });
});

describe("plan: guards around the table", () => {
  it("records a crash once, with back-off, and waits before restarting", () => {
    const row = service({ ...ours, status: "running", last_exit_code: 3 });
    const plan = planService(row, observe(row, table(), false), ctx);
    assert.equal(plan.tableAction, "restart");
    assert.equal(plan.action, "none");
    assert.equal(plan.update?.consecutive_failures, 1);
    assert.equal(plan.update?.status, "crashed");
    assert.equal(plan.update?.backoff_until?.getTime(), NOW.getTime() + 1000);
    assert.match(plan.update?.last_error ?? "", /exit code 3/);
    const recorded = { ...row, ...plan.update! };
    const again = planService(recorded, observe(recorded, table(), false), ctx);
    assert.equal(again.update, null, "the same crash is not counted twice");
    const later = planService(recorded, observe(recorded, table(), false), { ...ctx, now: new Date(NOW.getTime() + 1001) });
    assert.equal(later.action, "restart");
  });

  it("marks a service failed after maxRapidFailures and leaves it alone", () => {
    const row = service({ ...ours, status: "running", consecutive_failures: 2 });
    const plan = planService(row, observe(row, table(), false), ctx);
    assert.equal(plan.update?.status, "failed");
    assert.equal(plan.action, "none");
    const failed = service({ status: "failed", consecutive_failures: 3, backoff_until: null });
    const later = planService(failed, observe(failed, table(), false), { ...ctx, now: new Date(NOW.getTime() + 3600_000) });
    assert.equal(later.tableAction, "start");
    assert.equal(later.action, "none");
    assert.match(later.reason, /left alone/);
  });

  it("a disabled failed service is still cleaned up", () => {
    const failed = service({ status: "failed", desired_status: "disabled", consecutive_failures: 3 });
    assert.equal(planService(failed, observe(failed, table(), false), ctx).action, "cleanup-db");
  });

  it("waits out a back-off before a start", () => {
    const row = service({ status: "stopped", consecutive_failures: 1, backoff_until: new Date(NOW.getTime() + 500) });
    assert.equal(planService(row, observe(row, table(), false), ctx).action, "none");
    assert.equal(planService(row, observe(row, table(), false), { ...ctx, now: new Date(NOW.getTime() + 501) }).action, "start");
  });

  it("stops a start that never opened its port, counting a failure", () => {
    const row = service({ ...ours, status: "starting", status_changed_at: new Date(NOW.getTime() - policy.startTimeoutMs - 1) });
    const plan = planService(row, observe(row, table({}), false), ctx);
    assert.equal(plan.action, "stop");
    assert.equal(plan.update?.consecutive_failures, 1);
    assert.match(plan.update?.last_error ?? "", /did not open port 8080/);
    const young = service({ ...ours, status: "starting", status_changed_at: new Date(NOW.getTime() - 10) });
    assert.equal(planService(young, observe(young, table({}), false), ctx).action, "none");
  });

  it("a healthy stretch clears the failure count", () => {
    const row = service({ ...ours, status: "running", consecutive_failures: 2, backoff_until: NOW, status_changed_at: new Date(NOW.getTime() - policy.healthyAfterMs) });
    const plan = planService(row, observe(row, table({}), true), ctx);
    assert.equal(plan.update?.consecutive_failures, 0);
    assert.equal(plan.update?.backoff_until, null);
    const brief = service({ ...ours, status: "running", consecutive_failures: 2, status_changed_at: new Date(NOW.getTime() - 1000) });
    assert.equal(planService(brief, observe(brief, table({}), true), ctx).update, null);
  });

  it("never starts or signals anything on a protected port", () => {
    for (const [desired, runtimeRow, portOpen] of [
      ["enabled", service({ port: 5432 }), true],
      ["disabled", service({ port: 5432, ...ours, status: "running" }), true],
    ] as const) {
      const row = { ...runtimeRow, desired_status: desired };
      const plan = planService(row, observe(row, table({}), portOpen), ctx);
      assert.equal(plan.action, "none", desired);
      assert.match(plan.update?.last_error ?? "", /protected/);
    }
  });

  it("does not start a row without a command", () => {
    const row = service({ command: null });
    const plan = planService(row, observe(row, table(), false), ctx);
    assert.equal(plan.action, "none");
    assert.match(plan.reason, /no command/);
  });

  it("writes nothing for a service that needs nothing", () => {
    const row = service({ ...ours, status: "running" });
    const plan = planService(row, observe(row, table({}), true), ctx);
    assert.equal(plan.action, "none");
    assert.equal(plan.update, null);
  });
});
