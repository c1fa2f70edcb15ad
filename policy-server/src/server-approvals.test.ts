import {
  ApprovalService,
  AwaitApprovalRequestSchema,
  AwaitApprovalResponseSchema,
  CheckRequestSchema,
  type CheckResponse,
  CheckResponseSchema,
  CheckStreamRequestSchema,
  type CheckStreamResponse,
  CheckStreamResponseSchema,
  Decision,
  Kind,
  Operation,
} from "@agentsh/proto";
import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryApprovalStore, type NewApproval } from "./approval-store.js";
import { approvalsCommand } from "./cli-approvals.js";
import { type PolicyServer, startPolicyServer } from "./server.js";

const POLICY = `version: 1
name: approvals-test
default_action: deny
file_rules:
  - name: approve-deploy
    paths: ['C:\\deploy\\**']
    operations: [write, create, rename]
    decision: approve
    message: 'deploy change: {{.Path}}'
    timeout: 2m
  - name: approve-quick
    paths: ['C:\\quick\\**']
    operations: [write]
    decision: approve
    timeout: 300ms
  - name: ws
    paths: ['C:\\w\\**']
    operations: ['*']
    decision: allow
registry_rules:
  - name: approve-services
    paths: ['HKLM\\SYSTEM\\CurrentControlSet\\Services\\*']
    operations: [write]
    decision: approve
`;

function codec<D extends DescMessage>(schema: D) {
  return {
    serialize: (m: MessageShape<D>) => Buffer.from(toBinary(schema, m)),
    deserialize: (b: Buffer) => fromBinary(schema, b),
  };
}
const checkReq = codec(CheckRequestSchema);
const checkRes = codec(CheckResponseSchema);
const awaitReq = codec(AwaitApprovalRequestSchema);
const awaitRes = codec(AwaitApprovalResponseSchema);

let server: PolicyServer;
let client: grpc.Client;
let connect: ReturnType<typeof createClient<typeof ApprovalService>>;
let seq = 0;

const session = (token = 7n) => ({
  token,
  host: "host1",
  userSid: "S-1-5-21-1-2-3-1001",
  workspace: "C:\\w",
});

function check(req: Parameters<typeof create<typeof CheckRequestSchema>>[1]): Promise<CheckResponse> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      "/agentsh.v1.PolicyService/Check",
      checkReq.serialize,
      checkRes.deserialize,
      create(CheckRequestSchema, req),
      (err, res) => (err ? reject(err) : resolve(res!)),
    );
  });
}

/** AwaitApproval through @grpc/grpc-js, as the broker calls it. */
function awaitApproval(approvalId: string, timeoutMs = 0, deadlineMs = 10_000) {
  return new Promise<MessageShape<typeof AwaitApprovalResponseSchema>>((resolve, reject) => {
    client.makeUnaryRequest(
      "/agentsh.v1.ApprovalService/AwaitApproval",
      awaitReq.serialize,
      awaitRes.deserialize,
      create(AwaitApprovalRequestSchema, { approvalId, timeoutMs }),
      { deadline: Date.now() + deadlineMs },
      (err, res) => (err ? reject(err) : resolve(res!)),
    );
  });
}

/** A fresh path per test so approvals of one test are not deduplicated into another's. */
function deployWrite(extra: Record<string, unknown> = {}) {
  seq++;
  return check({
    kind: Kind.FILE,
    operation: Operation.WRITE,
    path: `\\Device\\HarddiskVolume3\\deploy\\app${seq}\\config.json`,
    session: session(),
    pid: 4242,
    volumes: [{ device: "\\Device\\HarddiskVolume3", drive: "C:" }],
    ...extra,
  });
}

async function connectError(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected an error");
}

function grpcError(p: Promise<unknown>): Promise<grpc.ServiceError> {
  return p.then(
    () => {
      throw new Error("expected an error");
    },
    (err: grpc.ServiceError) => err,
  );
}

beforeAll(async () => {
  server = await startPolicyServer({ address: "127.0.0.1:0", policyText: POLICY });
  client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  connect = createClient(
    ApprovalService,
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  );
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

describe("approvals through real clients", () => {
  it("approve: the check carries an id, a waiter gets ALLOW when a human approves", async () => {
    const r = await deployWrite();
    expect(r).toMatchObject({ decision: Decision.APPROVE, rule: "approve-deploy", cacheTtlMs: 0 });
    expect(r.approvalId).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.approvalTimeoutMs).toBeGreaterThan(119_000);
    expect(r.approvalTimeoutMs).toBeLessThanOrEqual(120_000);

    const { approvals } = await connect.listApprovals({});
    const a = approvals.find((x) => x.id === r.approvalId)!;
    expect(a).toMatchObject({
      kind: Kind.FILE,
      operation: Operation.WRITE,
      path: `C:\\deploy\\app${seq}\\config.json`,
      rule: "approve-deploy",
      message: `deploy change: C:\\deploy\\app${seq}\\config.json`,
      pid: 4242,
      session: { token: 7n, host: "host1", workspace: "C:\\w" },
    });
    expect(Number(a.expiresAtMs - a.createdAtMs)).toBe(120_000);

    const waiting = [awaitApproval(r.approvalId), awaitApproval(r.approvalId, 60_000)];
    await new Promise((res) => setTimeout(res, 50));
    const resolved = await connect.resolveApproval({
      approvalId: r.approvalId,
      decision: Decision.ALLOW,
      resolvedBy: "alice",
      reason: "release 1.2",
    });
    expect(resolved.approval?.id).toBe(r.approvalId);
    for (const w of await Promise.all(waiting)) {
      expect(w).toMatchObject({
        decision: Decision.ALLOW,
        timedOut: false,
        resolvedBy: "alice",
        reason: "release 1.2",
      });
    }
    // Later waiters get the answer at once; the approval is no longer listed.
    expect(await awaitApproval(r.approvalId)).toMatchObject({
      decision: Decision.ALLOW,
      resolvedBy: "alice",
    });
    expect((await connect.listApprovals({})).approvals.some((x) => x.id === r.approvalId)).toBe(false);
    // The same answer again is a no-op; the other answer is refused.
    await connect.resolveApproval({ approvalId: r.approvalId, decision: Decision.ALLOW, resolvedBy: "bob" });
    const e = await connectError(
      connect.resolveApproval({ approvalId: r.approvalId, decision: Decision.DENY, resolvedBy: "bob" }),
    );
    expect(e.code).toBe(Code.FailedPrecondition);
    expect(e.rawMessage).toMatch(/already allowed by alice/);
  });

  it("deny: waiters get DENY with who and why, not timed_out", async () => {
    const r = await deployWrite();
    const w = awaitApproval(r.approvalId, 30_000);
    await new Promise((res) => setTimeout(res, 30));
    await connect.resolveApproval({
      approvalId: r.approvalId,
      decision: Decision.DENY,
      resolvedBy: "carol",
      reason: "not during the freeze",
    });
    expect(await w).toMatchObject({
      decision: Decision.DENY,
      timedOut: false,
      resolvedBy: "carol",
      reason: "not during the freeze",
    });
  });

  it("timeout: the await's own timeout, then the approval's expiry", async () => {
    const r = await deployWrite();
    const t0 = Date.now();
    const w = await awaitApproval(r.approvalId, 150);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(w).toMatchObject({ decision: Decision.DENY, timedOut: true, resolvedBy: "" });
    expect(w.reason).toMatch(/still pending/);
    // Still pending after the waiter gave up: a human can still answer it.
    expect((await connect.listApprovals({})).approvals.some((x) => x.id === r.approvalId)).toBe(true);

    const q = await check({
      kind: Kind.FILE,
      operation: Operation.WRITE,
      path: "C:\\quick\\x",
      session: session(),
    });
    expect(q.decision).toBe(Decision.APPROVE);
    expect(q.approvalTimeoutMs).toBeLessThanOrEqual(300);
    const t1 = Date.now();
    const e = await awaitApproval(q.approvalId, 10_000);
    expect(Date.now() - t1).toBeLessThan(2000);
    expect(e).toMatchObject({ decision: Decision.DENY, timedOut: true });
    expect(e.reason).toMatch(/expired/);
    expect((await connect.listApprovals({})).approvals.some((x) => x.id === q.approvalId)).toBe(false);
    const late = await connectError(
      connect.resolveApproval({ approvalId: q.approvalId, decision: Decision.ALLOW, resolvedBy: "dave" }),
    );
    expect(late.code).toBe(Code.FailedPrecondition);
    expect(late.rawMessage).toMatch(/expired/);
  });

  it("the caller's deadline ends a wait (the approval stays pending)", async () => {
    const r = await deployWrite();
    const err = await grpcError(awaitApproval(r.approvalId, 0, 200));
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await new Promise((res) => setTimeout(res, 50));
    expect((server.approvals as MemoryApprovalStore).waiting).toBe(0);
    expect((await connect.listApprovals({})).approvals.some((x) => x.id === r.approvalId)).toBe(true);
  });

  it("dedupe: identical pending requests share one approval; other sessions and paths do not", async () => {
    const a = await deployWrite();
    const path = `\\Device\\HarddiskVolume3\\deploy\\app${seq}\\config.json`;
    const same = await Promise.all([
      check({
        kind: Kind.FILE,
        operation: Operation.WRITE,
        path,
        session: session(),
        volumes: [{ device: "\\Device\\HarddiskVolume3", drive: "C:" }],
      }),
      // Another spelling of the same file, another pid: still the same request.
      check({
        kind: Kind.FILE,
        operation: Operation.WRITE,
        path: `c:\\DEPLOY\\app${seq}\\.\\config.json`,
        session: session(),
        pid: 1,
      }),
    ]);
    for (const s of same) expect(s.approvalId).toBe(a.approvalId);
    const otherSession = await check({
      kind: Kind.FILE,
      operation: Operation.WRITE,
      path,
      session: session(8n),
      volumes: [{ device: "\\Device\\HarddiskVolume3", drive: "C:" }],
    });
    const otherOp = await check({
      kind: Kind.FILE,
      operation: Operation.CREATE,
      path: `C:\\deploy\\app${seq}\\config.json`,
      session: session(),
    });
    const ids = new Set([a.approvalId, otherSession.approvalId, otherOp.approvalId]);
    expect(ids.size).toBe(3);
    const listed = (await connect.listApprovals({})).approvals.filter((x) => ids.has(x.id));
    expect(listed).toHaveLength(3);
    // Once answered, the same request opens a new approval (an answer is for one operation).
    await connect.resolveApproval({ approvalId: a.approvalId, decision: Decision.DENY, resolvedBy: "erin" });
    const again = await check({
      kind: Kind.FILE,
      operation: Operation.WRITE,
      path: `C:\\deploy\\app${seq}\\config.json`,
      session: session(),
    });
    expect(again.approvalId).not.toBe(a.approvalId);
    expect(again.approvalId).not.toBe("");
  });

  it("renames: both canonical paths key the approval; the destination is in the message", async () => {
    const one = await check({
      kind: Kind.FILE,
      operation: Operation.RENAME,
      path: "C:\\w\\a.txt",
      renameDest: "C:\\deploy\\r\\a.txt",
      session: session(),
    });
    const two = await check({
      kind: Kind.FILE,
      operation: Operation.RENAME,
      path: "C:\\w\\b.txt",
      renameDest: "C:\\deploy\\r\\a.txt",
      session: session(),
    });
    expect(one.decision).toBe(Decision.APPROVE);
    expect(two.approvalId).not.toBe(one.approvalId);
    const a = (await connect.listApprovals({})).approvals.find((x) => x.id === one.approvalId)!;
    expect(a.path).toBe("C:\\w\\a.txt");
    expect(a.message).toContain("C:\\deploy\\r\\a.txt");
  });

  it("CheckStream and the registry: approvals too; list is oldest first", async () => {
    const call = client.makeBidiStreamRequest(
      "/agentsh.v1.PolicyService/CheckStream",
      (m: MessageShape<typeof CheckStreamRequestSchema>) =>
        Buffer.from(toBinary(CheckStreamRequestSchema, m)),
      (b: Buffer) => fromBinary(CheckStreamResponseSchema, b),
    );
    const got = new Promise<CheckStreamResponse>((resolve) => call.once("data", resolve));
    call.write(
      create(CheckStreamRequestSchema, {
        check: {
          requestId: 5n,
          kind: Kind.REGISTRY,
          operation: Operation.WRITE,
          path: "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\evil",
          session: session(),
        },
      }),
    );
    const m = await got;
    call.end();
    expect(m.result.case).toBe("response");
    const res = m.result.value as CheckResponse;
    expect(res).toMatchObject({ requestId: 5n, decision: Decision.APPROVE, approvalTimeoutMs: 120_000 });
    const list = (await connect.listApprovals({})).approvals;
    const a = list.find((x) => x.id === res.approvalId)!;
    expect(a).toMatchObject({ kind: Kind.REGISTRY, path: "HKLM\\SYSTEM\\CurrentControlSet\\Services\\evil" });
    const created = list.map((x) => Number(x.createdAtMs));
    expect(created).toEqual([...created].sort((x, y) => x - y));
  });

  it("invalid arguments and unknown ids", async () => {
    const bad = [
      [connect.awaitApproval({ approvalId: "" }), Code.InvalidArgument, /^approval_id is required/],
      [connect.awaitApproval({ approvalId: "x".repeat(200) }), Code.InvalidArgument, /^approval_id longer/],
      [connect.awaitApproval({ approvalId: "no-such-id" }), Code.NotFound, /not found/],
      [
        connect.resolveApproval({ approvalId: "no-such-id", decision: Decision.ALLOW, resolvedBy: "x" }),
        Code.NotFound,
        /not found/,
      ],
      [
        connect.resolveApproval({ approvalId: "x", decision: Decision.AUDIT, resolvedBy: "x" }),
        Code.InvalidArgument,
        /^decision must be/,
      ],
      [
        connect.resolveApproval({ approvalId: "x", decision: Decision.UNSPECIFIED, resolvedBy: "x" }),
        Code.InvalidArgument,
        /^decision must be/,
      ],
      [
        connect.resolveApproval({ approvalId: "x", decision: Decision.DENY, resolvedBy: " " }),
        Code.InvalidArgument,
        /^resolved_by is required/,
      ],
      [
        connect.resolveApproval({
          approvalId: "x",
          decision: Decision.DENY,
          resolvedBy: "x",
          reason: "r".repeat(5000),
        }),
        Code.InvalidArgument,
        /^reason longer/,
      ],
    ] as const;
    for (const [p, code, msg] of bad) {
      const e = await connectError(p);
      expect([Code[e.code], e.rawMessage]).toEqual([Code[code], expect.stringMatching(msg)]);
    }
    // The same through gRPC.
    const g = await grpcError(awaitApproval("no-such-id"));
    expect(g.code).toBe(grpc.status.NOT_FOUND);
    const grpcConnect = createClient(ApprovalService, createGrpcTransport({ baseUrl: server.url }));
    const e = await connectError(grpcConnect.awaitApproval({ approvalId: "" }));
    expect(e.code).toBe(Code.InvalidArgument);
  });

  it("CLI: approvals list, approve, deny against the running server", async () => {
    const r = await deployWrite();
    const d = await deployWrite();
    const run = async (...args: string[]) => {
      let out = "";
      let err = "";
      const code = await approvalsCommand([...args, "--server", server.url], {
        out: (s) => (out += s),
        err: (s) => (err += s),
      });
      return { code, out, err };
    };
    const list = await run("list");
    expect(list.code).toBe(0);
    expect(list.out).toContain(`${r.approvalId}  file write C:\\deploy\\app${seq - 1}\\config.json`);
    expect(list.out).toContain("rule approve-deploy; host1, session 7, pid 4242");
    const json = (await run("list", "--json")).out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(json.find((j) => j.id === d.approvalId)).toMatchObject({
      operation: "write",
      rule: "approve-deploy",
    });

    const w = awaitApproval(r.approvalId);
    const ok = await run("approve", r.approvalId, "--by", "frank", "--reason", "looks fine");
    expect(ok).toMatchObject({
      code: 0,
      out: `approved ${r.approvalId} (write C:\\deploy\\app${seq - 1}\\config.json)\n`,
    });
    expect(await w).toMatchObject({ decision: Decision.ALLOW, resolvedBy: "frank", reason: "looks fine" });
    expect((await run("deny", d.approvalId, "--by", "frank")).code).toBe(0);
    expect(await awaitApproval(d.approvalId)).toMatchObject({ decision: Decision.DENY, resolvedBy: "frank" });

    const again = await run("deny", r.approvalId, "--by", "frank");
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already allowed by frank/);
    expect((await run("approve")).code).toBe(2);
    expect((await run("frobnicate", "x")).code).toBe(2);
    const down = await approvalsCommand(["list", "--server", "http://127.0.0.1:1"], {
      out: () => {},
      err: () => {},
    });
    expect(down).toBe(1);
  });
});

describe("MemoryApprovalStore bounds", () => {
  const req = (path: string, token = 1n): NewApproval => ({
    kind: "file",
    operation: "write",
    path,
    renameDest: "",
    rule: "r",
    message: "m",
    session: { token, workspace: "", userSid: "", userProfile: "", agent: "", host: "h" },
    pid: 1,
    timeoutMs: 60_000,
    policyVersion: "1-x",
  });

  it("bounds pending approvals in total and per session, and waiters", async () => {
    const s = new MemoryApprovalStore({ maxPending: 3, maxPendingPerSession: 2, maxWaiters: 1 });
    expect((await s.open(req("C:\\a"))).ok).toBe(true);
    expect((await s.open(req("C:\\b"))).ok).toBe(true);
    expect(await s.open(req("C:\\c"))).toMatchObject({ ok: false, error: "too_many_pending_for_session" });
    // A duplicate is not a new approval, so it is not refused.
    expect(await s.open(req("c:\\A".toUpperCase()))).toMatchObject({ ok: true, created: false });
    expect((await s.open(req("C:\\c", 2n))).ok).toBe(true);
    expect(await s.open(req("C:\\d", 3n))).toMatchObject({ ok: false, error: "too_many_pending" });
    const [a] = await s.listPending();
    const first = s.wait(a!.id, Date.now() + 5000);
    expect(await s.wait(a!.id, Date.now() + 5000)).toEqual({ ok: false, error: "too_many_waiters" });
    await s.resolve(a!.id, true, "x", "");
    expect((await first).ok).toBe(true);
    expect(s.waiting).toBe(0);
    // Answering frees a pending slot.
    expect((await s.open(req("C:\\d", 3n))).ok).toBe(true);
    await s.close();
    expect(await s.wait(a!.id, Date.now() + 5000)).toEqual({ ok: false, error: "closed" });
  });

  it("keys compare names the way Windows does, not with full case folding", async () => {
    const s = new MemoryApprovalStore();
    const one = await s.open(req("C:\\straße"));
    const two = await s.open(req("C:\\STRASSE"));
    const three = await s.open(req("C:\\STRAßE"));
    expect(one.ok && two.ok && three.ok).toBe(true);
    if (one.ok && two.ok && three.ok) {
      expect(two.approval.id).not.toBe(one.approval.id);
      expect(three.approval.id).toBe(one.approval.id);
    }
    await s.close();
  });

  it("expiry and retention with an injected clock", async () => {
    let now = 1_000_000;
    const s = new MemoryApprovalStore({ now: () => now, retainMs: 1000 });
    const r = await s.open(req("C:\\x"));
    if (!r.ok) throw new Error("open");
    now += 60_000;
    expect((await s.get(r.approval.id))?.state).toBe("expired");
    expect(await s.listPending()).toEqual([]);
    expect(await s.resolve(r.approval.id, true, "x", "")).toMatchObject({ ok: false, error: "expired" });
    now += 2000;
    await s.listPending();
    expect(await s.get(r.approval.id)).toBeUndefined();
    await s.close();
  });
});
