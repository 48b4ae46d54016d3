import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, describe, it } from "node:test";
import { portAnswers, probePorts, waitForPortFree } from "../../../src/platform/services/ports.ts";
import { bootId, isSameProcess, listenersOnPort, parseStat, readMarker, readProcess, readProcessTable } from "../../../src/platform/services/proc.ts";
import { checkSignalTarget, findTargets, NotOurProcess, RefusedSignal, sendSignal, terminate } from "../../../src/platform/services/signals.ts";
import { alive, fixture, freePort, killEverything, removeTempDirs, startForeign, uniqueHost, waitFor } from "./fixtures/harness.ts";

const host = uniqueHost("proc");
after(() => {
  killEverything([host]);
  removeTempDirs();
});

function spawnMarked(args: string[], port: number, instance = "inst-1") {
  const child = spawn(process.execPath, [fixture, ...args], {
    detached: true,
    stdio: "ignore",
    env: { PATH: process.env.PATH ?? "", PORT: String(port), SYSTEMPROMPT_SERVICE: "svc", SYSTEMPROMPT_SERVICE_INSTANCE: instance, SYSTEMPROMPT_SERVICE_HOST: host },
  });
  child.unref();
  return child;
}

describe("/proc reading", () => {
  it("parses stat lines whose command name holds spaces and parentheses", () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[0] = "S";
    fields[19] = "987654";
    const info = parseStat(`123 (a) b (c) ${fields.join(" ")}`);
    assert.equal(info?.comm, "a) b (c");
    assert.equal(info?.state, "S");
    assert.equal(info?.ppid, 4);
    assert.equal(info?.pgrp, 5);
    assert.equal(info?.startTicks, "987654");
    assert.equal(parseStat("garbage"), null);
  });

  it("reads the whole table once, with this process in it", () => {
    const table = readProcessTable();
    const me = table.byPid.get(process.pid);
    assert.ok(me, "this process is listed");
    assert.equal(me.ppid, process.ppid);
    assert.equal(table.bootId, bootId());
    assert.ok(isSameProcess(me, { pid: process.pid, startTicks: me.startTicks, bootId: bootId() }, table.bootId));
    assert.ok(!isSameProcess(me, { pid: process.pid, startTicks: String(BigInt(me.startTicks) + 1n), bootId: bootId() }, table.bootId));
  });

  it("finds the markers in a child's environment, the listener of a port, and its group", async () => {
    const port = await freePort();
    const child = spawnMarked([], port);
    await waitFor("the port", () => portAnswers(port));
    assert.deepEqual(readMarker(child.pid!), { service: "svc", instance: "inst-1" });
    assert.deepEqual(readMarker(process.pid)?.service ?? null, null, "the test runner has no marker");
    assert.deepEqual(listenersOnPort(port), [child.pid]);
    assert.equal(readProcess(child.pid!)?.pgrp, child.pid, "detached: leads its own group");
    process.kill(child.pid!, "SIGKILL");
    assert.ok(await waitForPortFree(port, 3000));
  });

  it("probes many ports at once", async () => {
    const open = await freePort();
    const closed = await freePort();
    await startForeign([], open);
    const answers = await probePorts([open, closed, open]);
    assert.equal(answers.get(open), true);
    assert.equal(answers.get(closed), false);
  });
});

describe("signal guards", () => {
  it("refuses pid 0, 1, negative, fractional and impossible pids, itself and its parent", () => {
    for (const pid of [0, 1, -1, -1234, 1.5, Number.NaN, 4_194_305, 2_147_483_647, 4_294_967_295, process.pid, process.ppid]) {
      assert.throws(() => checkSignalTarget(pid, false), RefusedSignal, `pid ${pid}`);
      // signal 0 delivers nothing, so even a broken guard could not hurt here
      assert.throws(() => sendSignal(pid, 0), RefusedSignal, `sendSignal ${pid}`);
    }
    assert.throws(() => checkSignalTarget(readProcess(process.pid)!.pgrp, true), RefusedSignal, "its own process group");
  });

  it("reports a gone pid as gone", async () => {
    const child = spawn(process.execPath, ["-e", "0"], { stdio: "ignore" });
    await new Promise((resolve) => child.once("exit", resolve));
    assert.equal(sendSignal(child.pid!, 0), false);
  });

  it("does not target a pid whose start time differs from the recorded one", async () => {
    const port = await freePort();
    const child = spawnMarked([], port);
    await waitFor("the port", () => portAnswers(port));
    const info = readProcess(child.pid!)!;
    const wrong = { pid: child.pid!, startTicks: String(BigInt(info.startTicks) - 1n), bootId: bootId() };
    const targets = findTargets({ identity: wrong, service: "svc", instanceId: null }, readProcessTable());
    assert.deepEqual(targets, { leader: null, members: [], impostor: null });
    const result = await terminate({ identity: wrong, service: "svc", instanceId: null }, { graceMs: 100, protectedPorts: new Set() });
    assert.equal(result.signalled, false);
    assert.ok(alive(child.pid!), "the process with the reused pid was left alone");
    const right = { ...wrong, startTicks: info.startTicks };
    // the right identity is not enough: the environment must carry this service's instance marker
    for (const [service, instanceId] of [["svc", null], ["svc", "inst-2"], ["other", "inst-1"]] as const) {
      await assert.rejects(terminate({ identity: right, service, instanceId }, { graceMs: 100, force: true, protectedPorts: new Set() }), (error: unknown) => {
        assert.ok(error instanceof NotOurProcess);
        assert.match(error.message, /does not carry this service's instance marker .*nothing was signalled/);
        return true;
      });
      assert.ok(alive(child.pid!), `${service}/${instanceId}: not signalled`);
    }
    const stopped = await terminate({ identity: right, service: "svc", instanceId: "inst-1" }, { graceMs: 2000, protectedPorts: new Set() });
    assert.equal(stopped.signalled, true);
    assert.equal(stopped.killed, false, "it obeyed SIGTERM");
    await waitFor("exit", () => !alive(child.pid!));
  });

  it("refuses to signal a process that listens on a protected port", async () => {
    const port = await freePort();
    const guarded = await freePort();
    const child = spawnMarked(["--extra-port", String(guarded)], port);
    await waitFor("both ports", async () => (await portAnswers(port)) && (await portAnswers(guarded)));
    const identity = { pid: child.pid!, startTicks: readProcess(child.pid!)!.startTicks, bootId: bootId() };
    await assert.rejects(terminate({ identity, service: "svc", instanceId: "inst-1" }, { graceMs: 100, protectedPorts: new Set([guarded]) }), /protected port/);
    assert.ok(alive(child.pid!));
  });
});
