// The broker's audit record and per-decision metrics: every field the issue asks for, written as one
// JSON line that JSON.parse reads back (hostile paths too), nothing for a plain allowed server answer,
// and decisions and latencies counted into the series the metric producer publishes.
import { Writable } from "node:stream";
import { CheckRequestSchema, CheckResponseSchema, Decision, Kind, Operation } from "@agentsh/proto";
import { createLogger } from "@agentsh/telemetry";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import type { DecisionRecord } from "./decide.js";
import { MsgType, RegOp } from "./port/protocol.js";
import { AUDIT_FIELDS, auditHook, resultHook } from "./telemetry-audit.js";
import { decisionDone, decisionStarted } from "./telemetry-decision.js";
import { brokerHistograms } from "./telemetry-metrics.js";

function rec(path: string, decision: Decision, source: DecisionRecord["source"]): DecisionRecord {
  const check = create(CheckRequestSchema, {
    kind: Kind.REGISTRY,
    operation: Operation.RENAME,
    path,
    renameDest: `${path}-new`,
    valueName: "v\u0000",
  });
  return {
    request: { sessionToken: 12345678901234567890n, processId: 4242 } as DecisionRecord["request"],
    check,
    response: create(CheckResponseSchema, {
      decision,
      rule: 'rule "x"',
      policyVersion: "7-abc",
      mitreTechnique: "T1552",
    }),
    source,
    reason: source === "server" ? undefined : "deadline: no answer",
    reply: { decision: decision === Decision.ALLOW ? 0 : 1, cacheTTLMs: 0 },
    latencyMs: 1.23456,
    session: { agent: "claude\n" } as DecisionRecord["session"],
    approval: decision === Decision.APPROVE ? "timed_out" : undefined,
    span: decisionStarted(check),
  };
}

/** A broker logger whose lines are collected. */
function capture() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _e, cb) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      cb();
    },
  });
  return { lines, logger: createLogger({ service: "agentsh-broker", destination: sink as never }) };
}

describe("audit record", () => {
  it("of a registry operation's outcome (driver.audit_results): status, success, operation", async () => {
    const { lines, logger } = capture();
    const hook = resultHook(logger);
    const ev = {
      type: MsgType.AUDIT_EVENT,
      requestId: 0n,
      sessionToken: 7n,
      processId: 4004,
      kind: 2,
      operation: RegOp.SET_VALUE,
      status: 0xc0000022 | 0, // STATUS_ACCESS_DENIED
      path: "\\REGISTRY\\MACHINE\\SOFTWARE\\x",
      valueName: "v",
    } as const;
    hook(ev as Parameters<typeof hook>[0]);
    hook({ ...ev, status: 0 } as Parameters<typeof hook>[0]);
    await new Promise((r) => setTimeout(r, 20));
    const [denied, ok] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(denied).toMatchObject({
      audit: true,
      event: "registry_result",
      session: "7",
      pid: 4004,
      operation: "set_value",
      path: ev.path,
      value_name: "v",
      status: "0xc0000022",
      succeeded: false,
    });
    expect(ok).toMatchObject({ status: "0x00000000", succeeded: true });
  });

  it("has every field, as JSON that parses back, and none for a plain allowed server answer", async () => {
    const { lines, logger } = capture();
    const audit = auditHook(logger);
    const hostile = 'HKLM\\Software\\"evil"\u2028\ud800\\\u001b[31m';
    audit(rec(hostile, Decision.DENY, "server"));
    audit(rec("C:\\ok", Decision.ALLOW, "server")); // plain allow: no record
    audit(rec("C:\\stale", Decision.ALLOW, "stale"));
    audit(rec("C:\\approve", Decision.APPROVE, "server"));
    await new Promise((r) => setTimeout(r, 20));
    expect(lines).toHaveLength(3);
    const [deny, stale, approve] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(deny).toEqual({
      level: 30,
      time: expect.any(String),
      service: "agentsh-broker",
      audit: true,
      session: "12345678901234567890",
      agent: "claude\n",
      pid: 4242,
      kind: "registry",
      operation: "rename",
      path: hostile,
      rename_dest: `${hostile}-new`,
      value_name: "v\u0000",
      decision: "deny",
      enforced: "deny",
      source: "server",
      rule: 'rule "x"',
      policy_version: "7-abc",
      mitre: "T1552",
      latency_ms: 1.235,
      msg: "decision",
    });
    expect(stale).toMatchObject({ source: "stale", enforced: "allow", reason: "deadline: no answer" });
    expect(approve).toMatchObject({ decision: "approve", approval: "timed_out" });
    // Every field the record can carry is one of AUDIT_FIELDS.
    for (const o of [deny, stale, approve])
      for (const k of Object.keys(o!))
        expect([...AUDIT_FIELDS, "level", "time", "service", "msg"]).toContain(k);
  });
});

describe("per-decision metrics", () => {
  it("counts latencies into agentsh.decision.duration by kind and source (approvals excluded)", () => {
    const series = () =>
      brokerHistograms.decisionDuration
        .allSeries()
        .find((s) => s.attributes.kind === "registry" && s.attributes.source === "fail_mode");
    const before = series()?.count ?? 0;
    const r = rec("C:\\x", Decision.DENY, "fail_mode");
    decisionDone(r);
    decisionDone(rec("C:\\y", Decision.APPROVE, "fail_mode"));
    expect(series()!.count).toBe(before + 1);
    expect(series()!.max).toBeGreaterThanOrEqual(r.latencyMs / 1000);
  });
});
