// End to end: real simulator (the driver's C core behind the emulated filter port), real broker
// (koffi -> libfltsim, grpc-js), real policy servers (connect-node), real policy engine.

import { Writable } from "node:stream";
import { ApprovalService, Decision, Operation } from "@agentsh/proto";
import { createLogger } from "@agentsh/telemetry";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import type { DecisionRecord } from "../../broker/src/decide.js";
import { auditHook } from "../../broker/src/telemetry-audit.js";
import { type Stack, sleep, startStack } from "./harness.js";

const POLICY = (secretDecision = "deny") => `
version: 1
name: e2e
mode: enforce
default_action: deny
default_read_action: allow
file_rules:
  - name: workspace
    paths: ['\${WORKSPACE}\\**']
    operations: ['*']
    decision: allow
    cache_ttl: 30s
  - name: secrets
    paths: ['C:\\Users\\*\\.ssh\\**']
    operations: [read, write]
    decision: ${secretDecision}
    cache_ttl: 30s
  - name: system32
    paths: ['C:\\Windows\\System32\\**']
    operations: [write, create, delete, rename]
    decision: deny
registry_rules:
  - name: run-keys
    paths: ['HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run*']
    operations: [write, create, delete, rename]
    decision: deny
    priority: 100
  - name: app
    paths: ['HKCU\\SOFTWARE\\demo\\**']
    operations: ['*']
    decision: allow
  - name: services
    paths: ['HKLM\\SYSTEM\\CurrentControlSet\\Services\\**']
    operations: [write, create, delete]
    decision: approve
    priority: 50
    timeout: 2m
`;

const ROOT = 1000;
let stack: Stack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

async function withSession(s: Stack) {
  s.broker.registerSession({
    token: 77n,
    rootPid: ROOT,
    workspace: "C:\\work\\repo",
    userSid: "S-1-5-21-1000000000-1000000000-1000000000-1001",
    userProfile: "C:\\Users\\dev",
    agent: "e2e",
  });
  return s.sim.ctl;
}

describe("end to end: simulator -> broker -> policy server", () => {
  it("allows and denies file and registry operations, and a child inherits its session", async () => {
    stack = await startStack({ policy: POLICY() });
    const ctl = await withSession(stack);
    expect(await ctl.file(ROOT, "write", "C:\\work\\repo\\src\\main.c")).toMatchObject({
      result: "allow",
      source: "broker",
    });
    expect(await ctl.file(ROOT, "read", "C:\\Users\\dev\\.ssh\\id_rsa")).toMatchObject({
      result: "deny",
      source: "broker",
    });
    expect(await ctl.file(ROOT, "write", "C:\\Windows\\System32\\evil.dll")).toMatchObject({
      result: "deny",
    });
    expect(
      await ctl.file(ROOT, "rename", "C:\\work\\repo\\a.dll", { dest: "C:\\Windows\\System32\\a.dll" }),
    ).toMatchObject({ result: "deny" });
    expect(
      await ctl.registry(ROOT, "set_value", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run", {
        value: "x",
      }),
    ).toMatchObject({
      result: "deny",
    });
    expect(
      await ctl.registry(ROOT, "set_value", "HKCU\\SOFTWARE\\demo\\settings", { value: "theme" }),
    ).toMatchObject({ result: "allow" });
    // Process tree: root -> cl.exe -> link.exe; the grandchild is still in the session.
    await ctl.spawn(1001, ROOT, "C:\\bin\\cl.exe");
    await ctl.spawn(1002, 1001, "C:\\bin\\link.exe");
    expect(await ctl.file(1002, "write", "C:\\Windows\\System32\\x.sys")).toMatchObject({
      result: "deny",
      session: "77",
    });
    expect(await ctl.file(1002, "write", "C:\\work\\repo\\out.exe")).toMatchObject({
      result: "allow",
      session: "77",
    });
    // A process outside any session is not filtered.
    expect(await ctl.file(4242, "write", "C:\\Windows\\System32\\x.sys")).toMatchObject({
      result: "allow",
      source: "untracked",
    });
    await expect.poll(() => stack!.broker.processCounts.get(77n)).toBe(3);
  });

  it("a cache hit never reaches the server", async () => {
    stack = await startStack({ policy: POLICY() });
    const ctl = await withSession(stack);
    expect((await ctl.file(ROOT, "write", "C:\\work\\repo\\a.c")).source).toBe("broker");
    const asked = stack.broker.relay.stats().server;
    for (let i = 0; i < 20; i++)
      expect(await ctl.file(ROOT, "write", "C:\\work\\repo\\a.c")).toMatchObject({
        result: "allow",
        source: "cache",
      });
    expect(stack.broker.relay.stats().server).toBe(asked);
  });

  it.each([
    ["closed", "deny"],
    ["open", "allow"],
  ] as const)(
    "fail-%s while the server is down, without a deadline per request once the breaker is open; recovers",
    async (mode, expected) => {
      stack = await startStack({ policy: POLICY(), env: { AGENTSH_SERVER_FAIL_MODE: mode } });
      const ctl = await withSession(stack);
      expect((await ctl.file(ROOT, "write", "C:\\work\\repo\\before.c")).result).toBe("allow");
      await stack.servers[0]!.stop();
      const results = [];
      for (let i = 0; i < 30; i++) results.push(await ctl.file(ROOT, "write", `C:\\work\\repo\\down${i}.c`));
      expect(results.every((r) => r.result === expected)).toBe(true);
      expect(stack.broker.relay.breakerState).toBe("open");
      // Once open, the broker answers at once: the last 20 took far less than a budget (800 ms) each.
      const tail = results.slice(10).map((r) => r.latency_us);
      expect(Math.max(...tail)).toBeLessThan(400_000);
      // The server comes back on the same address: the breaker closes and policy decides again.
      const { startServer } = await import("./harness.js");
      stack.servers[0] = await startServer(stack.policyPath, { port: stack.servers[0]!.port });
      await expect
        .poll(() => stack!.broker.relay.breakerState, { timeout: 5000, interval: 50 })
        .toBe("closed");
      expect(await ctl.file(ROOT, "read", "C:\\Users\\dev\\.ssh\\id_ed25519")).toMatchObject({
        result: "deny",
        source: "broker",
      });
    },
  );

  it("a policy change reaches the driver cache within 1 s", async () => {
    stack = await startStack({ policy: POLICY("deny") });
    const ctl = await withSession(stack);
    const path = "C:\\Users\\dev\\.ssh\\config";
    expect(await ctl.file(ROOT, "read", path)).toMatchObject({ result: "deny", source: "broker" });
    expect(await ctl.file(ROOT, "read", path)).toMatchObject({ result: "deny", source: "cache" });
    const changed = Date.now();
    stack.servers[0]!.reload(POLICY("allow"));
    let r = await ctl.file(ROOT, "read", path);
    while (r.result !== "allow" && Date.now() - changed < 3000) {
      await sleep(10);
      r = await ctl.file(ROOT, "read", path);
    }
    expect(r.result).toBe("allow");
    expect(Date.now() - changed).toBeLessThan(1000);
  });

  it("a broker restart puts the driver in its fail mode, then the reconnect flushes the cache", async () => {
    stack = await startStack({ policy: POLICY(), env: { AGENTSH_DRIVER_FAIL_MODE: "closed" } });
    const ctl = await withSession(stack);
    expect(await ctl.file(ROOT, "write", "C:\\work\\repo\\cached.c")).toMatchObject({
      result: "allow",
      source: "broker",
    });
    expect((await ctl.file(ROOT, "write", "C:\\work\\repo\\cached.c")).source).toBe("cache");
    await stack.stopBroker();
    const down = await ctl.file(ROOT, "write", "C:\\work\\repo\\new.c");
    expect(down).toMatchObject({ result: "deny", source: "failmode" });
    await stack.startBroker();
    await expect.poll(() => stack!.broker.port.connected, { timeout: 5000 }).toBe(true);
    // The session is registered again by the new broker (from its store) and the cache is empty.
    const after = await ctl.file(ROOT, "write", "C:\\work\\repo\\cached.c");
    expect(stack.broker.port.stats.lastError).toBe("");
    expect(after).toMatchObject({ result: "allow", source: "broker" });
    const m = await ctl.metrics();
    expect(m.metrics.FailModeDecisions).toBeGreaterThan(0);
    expect(m.metrics.FailState).toBe(0);
  });

  it("decisions the driver makes alone get audit records: cached denials name their rule, fail-mode answers reach the next broker", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _e, cb) {
        lines.push(...String(chunk).split("\n").filter(Boolean));
        cb();
      },
    });
    const audit = auditHook(createLogger({ service: "agentsh-broker", destination: sink as never }));
    const recs: DecisionRecord[] = [];
    stack = await startStack({
      policy: POLICY(),
      env: { AGENTSH_DRIVER_FAIL_MODE: "closed" },
      hooks: {
        onDriverDecision: (r) => {
          recs.push(r);
          audit(r);
        },
      },
    });
    const ctl = await withSession(stack);
    const key = "C:\\Users\\dev\\.ssh\\id_rsa";
    expect(await ctl.file(ROOT, "read", key)).toMatchObject({ result: "deny", source: "broker" });
    for (let i = 0; i < 3; i++)
      expect(await ctl.file(ROOT, "read", key)).toMatchObject({
        result: "deny",
        source: "cache",
        reported: true,
      });
    // A plain allowed cache hit is not reported.
    await ctl.file(ROOT, "write", "C:\\work\\repo\\a.c");
    const hit = await ctl.file(ROOT, "write", "C:\\work\\repo\\a.c");
    expect(hit).toMatchObject({ result: "allow", source: "cache" });
    expect(hit.reported).toBeUndefined();
    await expect.poll(() => recs.length).toBe(3);
    const version = stack.broker.policyVersion;
    expect(version).not.toBe("");
    expect(recs[0]).toMatchObject({
      source: "driver_cache",
      check: { path: key, operation: Operation.READ, pid: ROOT },
      response: { decision: Decision.DENY, rule: "secrets", policyVersion: version },
      reply: { decision: 1 },
      session: { agent: "e2e" },
    });
    const line = JSON.parse(lines[0]!);
    expect(line).toMatchObject({
      audit: true,
      session: "77",
      agent: "e2e",
      pid: ROOT,
      kind: "file",
      operation: "read",
      path: key,
      decision: "deny",
      enforced: "deny",
      source: "driver_cache",
      rule: "secrets",
      policy_version: version,
    });
    expect(line.latency_ms).toBeUndefined();
    // No broker: the driver answers by its fail mode (closed) and holds the reports for the next one.
    await stack.stopBroker();
    expect(await ctl.file(ROOT, "write", "C:\\work\\repo\\offline.c")).toMatchObject({
      result: "deny",
      source: "failmode",
      reported: true,
    });
    await stack.startBroker();
    await expect.poll(() => recs.length, { timeout: 5000 }).toBe(4);
    expect(recs[3]).toMatchObject({
      source: "driver_fail_mode",
      check: { path: "C:\\work\\repo\\offline.c", operation: Operation.WRITE },
      response: { decision: Decision.DENY, rule: "fail-mode:closed" },
      reason: expect.stringMatching(/no broker connected/),
    });
    expect(JSON.parse(lines[3]!)).toMatchObject({ source: "driver_fail_mode", enforced: "deny" });
  });

  it("approval: the broker holds the request while a human decides; never cached; no answer in time means deny", async () => {
    stack = await startStack({ policy: POLICY() });
    const ctl = await withSession(stack);
    const approvals = createClient(
      ApprovalService,
      createConnectTransport({ baseUrl: `http://${stack.servers[0]!.address}`, httpVersion: "1.1" }),
    );
    const key = "HKLM\\SYSTEM\\CurrentControlSet\\Services\\AgentHelper";
    const asked = ctl.registry(ROOT, "set_value", key, { value: "ImagePath" });
    // A human sees the pending approval and approves it while the driver waits.
    let pending = await approvals.listApprovals({});
    for (let i = 0; i < 100 && pending.approvals.length === 0; i++) {
      await sleep(10);
      pending = await approvals.listApprovals({});
    }
    expect(pending.approvals).toHaveLength(1);
    expect(pending.approvals[0]!.rule).toBe("services");
    await approvals.resolveApproval({
      approvalId: pending.approvals[0]!.id,
      decision: Decision.ALLOW,
      resolvedBy: "e2e",
    });
    expect(await asked).toMatchObject({ result: "allow", source: "broker" });
    // Approved once is not approved forever: the same operation asks again, and nobody answers.
    const started = Date.now();
    const again = await ctl.registry(ROOT, "set_value", key, { value: "ImagePath" });
    expect(again).toMatchObject({ result: "deny", source: "broker" });
    expect(Date.now() - started).toBeLessThan(1000); // within the driver's timeout (1 s here)
  });

  it("two server replicas, one killed under load: no decision is lost", async () => {
    stack = await startStack({ policy: POLICY(), replicas: 2, processes: true });
    const ctl = await withSession(stack);
    const results: Array<Promise<{ result: string; source: string }>> = [];
    for (let i = 0; i < 600; i++) {
      results.push(ctl.file(ROOT, "write", `C:\\work\\repo\\obj\\${i}.obj`));
      if (i === 200) stack.servers[0]!.kill();
      if (i % 20 === 0) await sleep(5);
    }
    const all = await Promise.all(results);
    expect(all.filter((r) => r.source !== "broker" || r.result !== "allow")).toEqual([]);
    expect(stack.broker.relay.stats().failMode).toBe(0);
  });
});
