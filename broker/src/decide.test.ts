import { CheckRequestSchema, CheckResponseSchema, Decision, Kind, Operation } from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Decider } from "./decide.js";
import type { DecisionEvent, FileRequest } from "./port/codec.js";
import { DecisionEventSource, DecisionReason, FileOp, MsgType, RegOp } from "./port/protocol.js";
import type { Relay } from "./relay/relay.js";
import { SessionStore } from "./session/session-store.js";
import { VolumeMap } from "./volumes.js";

const volumes = VolumeMap.fromPairs([["C:", "\\Device\\HarddiskVolume3"]]);
const decider = new Decider({
  relay: {} as Relay,
  sessions: new SessionStore(),
  volumes,
  budgetMs: 100,
  host: "h",
});
const file = (path: string, renameDest = ""): FileRequest => ({
  type: MsgType.POLICY_CHECK_FILE,
  requestId: 1n,
  sessionToken: 7n,
  processId: 10,
  threadId: 11,
  operation: renameDest ? FileOp.RENAME : FileOp.WRITE,
  createDisposition: 0,
  desiredAccess: 0,
  flags: 0,
  path,
  renameDest,
  volume: "",
});

describe("decider: driver request -> policy check", () => {
  it("maps volumes to drive letters and sends no volume map then", () => {
    const c = decider.toCheck(
      file("\\Device\\HarddiskVolume3\\w\\a.c", "\\Device\\HarddiskVolume3\\w\\b.c"),
      undefined,
    );
    expect(c.path).toBe("C:\\w\\a.c");
    expect(c.renameDest).toBe("C:\\w\\b.c");
    expect(c.volumes).toEqual([]);
  });

  it("sends the volume map when a path is still named by a device it could not map", () => {
    const c = decider.toCheck(file("\\device\\HarddiskVolume9\\x"), undefined);
    expect(c.path).toBe("\\device\\HarddiskVolume9\\x");
    expect(c.volumes.map((v) => [v.drive, v.device])).toEqual([["C:", "\\Device\\HarddiskVolume3"]]);
  });

  it("builds the message create() builds, field for field (file and registry, with a session)", () => {
    const sessions = new SessionStore();
    const s = sessions.add({
      token: 7n,
      rootPid: 10,
      workspace: "C:\\w",
      userSid: "S-1-5-21-1",
      userProfile: "",
      agent: "a",
    });
    const d = new Decider({ relay: {} as Relay, sessions, volumes, budgetMs: 100, host: "h" });
    const session = {
      token: 7n,
      workspace: "C:\\w",
      userSid: "S-1-5-21-1",
      userProfile: "",
      agent: "a",
      host: "h",
    };
    expect(d.toCheck(file("\\device\\HarddiskVolume9\\x"), s)).toStrictEqual(
      create(CheckRequestSchema, {
        kind: Kind.FILE,
        operation: Operation.WRITE,
        path: "\\device\\HarddiskVolume9\\x",
        session,
        pid: 10,
        volumes: [{ drive: "C:", device: "\\Device\\HarddiskVolume3" }],
        driverOperation: FileOp.WRITE,
      }),
    );
    const reg = {
      type: MsgType.POLICY_CHECK_REGISTRY,
      requestId: 2n,
      sessionToken: 7n,
      processId: 10,
      threadId: 11,
      operation: RegOp.RENAME_KEY,
      valueType: 1,
      dataSize: 0,
      reserved: 0,
      keyPath: "\\REGISTRY\\MACHINE\\SOFTWARE\\a",
      valueName: "v",
      newName: "b",
    } as Parameters<Decider["toCheck"]>[0];
    expect(d.toCheck(reg, s)).toStrictEqual(
      create(CheckRequestSchema, {
        kind: Kind.REGISTRY,
        operation: Operation.RENAME,
        path: "\\REGISTRY\\MACHINE\\SOFTWARE\\a",
        renameDest: "\\REGISTRY\\MACHINE\\SOFTWARE\\b",
        valueName: "v",
        session,
        pid: 10,
        driverOperation: RegOp.RENAME_KEY,
        valueType: 1,
      }),
    );
  });
});

describe("decider: the driver's reports of decisions it made alone", () => {
  const deny = (rule: string) =>
    create(CheckResponseSchema, {
      decision: Decision.DENY,
      rule,
      policyVersion: "v9",
      mitreTechnique: "T1552",
      cacheTtlMs: 30_000,
    });
  let next = deny("r0");
  const d = new Decider({
    relay: { check: async () => ({ response: next, source: "server", attempts: 1 }) } as unknown as Relay,
    sessions: new SessionStore(),
    volumes,
    budgetMs: 100,
    host: "h",
    cachedDenies: 2,
    currentPolicyVersion: () => "v9",
  });
  const event = (path: string, over: Partial<DecisionEvent> = {}): DecisionEvent => ({
    type: MsgType.DECISION_EVENT,
    requestId: 0n,
    sessionToken: 7n,
    processId: 10,
    threadId: 11,
    kind: Kind.FILE,
    operation: FileOp.WRITE,
    decision: 1,
    source: DecisionEventSource.CACHE,
    reason: DecisionReason.CACHED,
    queryStatus: 0,
    suppressed: 0,
    reserved: 0,
    path,
    string1: "",
    string2: "\\Device\\HarddiskVolume3",
    ...over,
  });

  it("a cached denial names the rule and version of the denial the driver cached (as the driver folds case)", async () => {
    next = deny("secrets");
    await d.answer(file("\\Device\\HarddiskVolume3\\w\\id_rsa"));
    const rec = d.driverDecision(event("\\DEVICE\\HARDDISKVOLUME3\\W\\ID_RSA", { suppressed: 4 }))!;
    expect(rec).toMatchObject({
      source: "driver_cache",
      check: { path: "C:\\W\\ID_RSA", operation: Operation.WRITE, pid: 10 },
      response: { decision: Decision.DENY, rule: "secrets", policyVersion: "v9", mitreTechnique: "T1552" },
      reply: { decision: 1 },
      suppressed: 4,
    });
    expect(rec.reason).toMatch(/driver's cache/);
    // another operation on the same path was never denied by the broker: no rule to name
    expect(
      d.driverDecision(event("\\Device\\HarddiskVolume3\\w\\id_rsa", { operation: FileOp.READ }))!.response,
    ).toMatchObject({ rule: "", policyVersion: "v9" });
  });

  it("remembers as many denials as the driver can cache, the least recently reported forgotten first", async () => {
    const rule = (n: string) => d.driverDecision(event(`\\Device\\HarddiskVolume3\\${n}`))!.response.rule;
    const denied = async (n: string) => {
      next = deny(`rule-${n}`);
      await d.answer(file(`\\Device\\HarddiskVolume3\\${n}`));
    };
    await denied("a");
    await denied("b");
    expect(rule("a")).toBe("rule-a"); // a repeat reported: a is the most recent now
    await denied("c");
    expect([rule("a"), rule("b"), rule("c")]).toEqual(["rule-a", "", "rule-c"]);
  });

  it("a fail-mode answer: the mode it enforced as the rule, no policy version, the failed query's status", () => {
    const rec = d.driverDecision(
      event("\\REGISTRY\\MACHINE\\SOFTWARE\\Run", {
        kind: Kind.REGISTRY,
        operation: RegOp.SET_VALUE,
        source: DecisionEventSource.FAIL_MODE,
        reason: DecisionReason.QUERY_FAILED,
        queryStatus: 0x102,
        decision: 0,
        string1: "agent",
        string2: "",
      }),
    )!;
    expect(rec).toMatchObject({
      source: "driver_fail_mode",
      check: { kind: Kind.REGISTRY, operation: Operation.WRITE, valueName: "agent" },
      response: { rule: "fail-mode:open", decision: Decision.ALLOW, policyVersion: "" },
    });
    expect(rec.reason).toBe("the driver's query failed (NTSTATUS 0x00000102)");
    const closed = d.driverDecision(
      event("\\x", { source: DecisionEventSource.FAIL_MODE, reason: DecisionReason.NO_CLIENT }),
    )!;
    expect(closed.response).toMatchObject({ rule: "fail-mode:closed", decision: Decision.DENY });
    expect(closed.reason).toBe("no broker connected to the driver");
  });

  it("an event naming no file or registry operation gives no record", () => {
    expect(d.driverDecision(event("x", { kind: 0 }))).toBeNull();
  });
});
