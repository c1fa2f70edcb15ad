import { mkdtempSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CheckRequestSchema,
  type CheckResponse,
  CheckResponseSchema,
  CheckStreamRequestSchema,
  type CheckStreamResponse,
  CheckStreamResponseSchema,
  Decision,
  health,
  Kind,
  Operation,
  PolicyService,
  WatchPolicyRequestSchema,
  type WatchPolicyResponse,
  WatchPolicyResponseSchema,
} from "@agentsh/proto";
import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  MAX_CONCURRENT_STREAMS,
  type PolicyServer,
  RESPONSE_COMPRESS_MIN_BYTES,
  startPolicyServer,
} from "./server.js";

const POLICY = `version: 1
name: server-test
default_action: deny
default_read_action: allow
file_rules:
  - name: workspace
    paths: ['\${WORKSPACE}\\**']
    operations: ['*']
    decision: allow
  - name: secrets
    paths: ['C:\\Users\\*\\.ssh\\**']
    operations: ['*']
    decision: deny
    message: 'no: {{.Path}}'
`;

/** protobuf-es messages as a grpc-js codec. */
function codec<D extends DescMessage>(schema: D) {
  return {
    serialize: (m: MessageShape<D>) => Buffer.from(toBinary(schema, m)),
    deserialize: (b: Buffer) => fromBinary(schema, b),
  };
}
const reqCodec = codec(CheckRequestSchema);
const resCodec = codec(CheckResponseSchema);
const session = { workspace: "C:\\w", userSid: "S-1-5-21-1-2-3-1001", userProfile: "C:\\Users\\dev" };
const volumes = [{ device: "\\Device\\HarddiskVolume3", drive: "C:" }];

let dir: string;
let file: string;
let server: PolicyServer;
let client: grpc.Client;

function unary(req: Parameters<typeof create<typeof CheckRequestSchema>>[1]): Promise<CheckResponse> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      "/agentsh.v1.PolicyService/Check",
      reqCodec.serialize,
      resCodec.deserialize,
      create(CheckRequestSchema, req),
      (err, res) => (err ? reject(err) : resolve(res!)),
    );
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "agentsh-policy-"));
  file = join(dir, "policy.yaml");
  writeFileSync(file, POLICY);
  server = await startPolicyServer({ address: "127.0.0.1:0", policyPath: file });
  client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

describe("gRPC via @grpc/grpc-js", () => {
  it("unary check: NT path form, session workspace", async () => {
    const r = await unary({
      requestId: 42n,
      kind: Kind.FILE,
      operation: Operation.WRITE,
      path: "\\Device\\HarddiskVolume3\\w\\src\\a.c",
      session,
      volumes,
    });
    expect(r).toMatchObject({
      requestId: 42n,
      decision: Decision.ALLOW,
      rule: "workspace",
      canonicalPath: "C:\\w\\src\\a.c",
    });
    expect(r.policyVersion).toMatch(/^1-[0-9a-f]{12}$/);
    const d = await unary({
      kind: Kind.FILE,
      operation: Operation.READ,
      path: "\\??\\c:\\users\\x\\.SSH\\id",
      session,
    });
    expect(d).toMatchObject({
      decision: Decision.DENY,
      rule: "secrets",
      cacheTtlMs: 60000,
      message: "no: C:\\users\\x\\.SSH\\id",
    });
    const reg = await unary({
      kind: Kind.REGISTRY,
      operation: Operation.WRITE,
      path: "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
      valueName: "x",
    });
    expect(reg).toMatchObject({ decision: Decision.DENY, mitreTechnique: "T1547.001" });
  });

  it("invalid requests get INVALID_ARGUMENT naming the field", async () => {
    const cases: [Parameters<typeof unary>[0], string][] = [
      [{ kind: Kind.FILE, operation: Operation.WRITE }, "path"],
      [{ operation: Operation.WRITE, path: "C:\\x" }, "kind"],
      [{ kind: Kind.FILE, path: "C:\\x" }, "operation"],
      [{ kind: 99 as Kind, operation: Operation.WRITE, path: "C:\\x" }, "kind"],
      [{ kind: Kind.FILE, operation: Operation.RENAME, path: "C:\\x" }, "rename_dest"],
      [
        { kind: Kind.FILE, operation: Operation.READ, path: "C:\\x", volumes: [{ device: "", drive: "C:" }] },
        "volumes[0].device",
      ],
      [
        {
          kind: Kind.FILE,
          operation: Operation.READ,
          path: "C:\\x",
          volumes: [{ device: "\\Device\\X", drive: "CC" }],
        },
        "volumes[0].drive",
      ],
      [
        {
          kind: Kind.FILE,
          operation: Operation.READ,
          path: "C:\\x",
          volumes: [
            { device: "\\Device\\HarddiskVolume3", drive: "C:" },
            { device: "\\Device\\HarddiskVolume4", drive: "C:" },
          ],
        },
        "volumes",
      ],
    ];
    for (const [req, field] of cases) {
      const err = await unary(req).catch((e: grpc.ServiceError) => e);
      expect((err as grpc.ServiceError).code, field).toBe(grpc.status.INVALID_ARGUMENT);
      expect((err as grpc.ServiceError).details).toMatch(new RegExp(`^${field.replace(/[[\]]/g, "\\$&")} `));
    }
  });

  it("garbage bytes do not crash the server", async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      client.makeUnaryRequest(
        "/agentsh.v1.PolicyService/Check",
        (b: Buffer) => b,
        resCodec.deserialize,
        Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12]),
        (e) => resolve(e!),
      );
    });
    // gRPC answers INTERNAL for a request message that does not parse
    expect(err.code).toBe(grpc.status.INTERNAL);
    const ok = await unary({ kind: Kind.FILE, operation: Operation.READ, path: "C:\\x" });
    expect(ok.decision).toBe(Decision.ALLOW);
  });

  it("bidirectional stream multiplexed by request id, errors in-band", async () => {
    const call = client.makeBidiStreamRequest(
      "/agentsh.v1.PolicyService/CheckStream",
      codec(CheckStreamRequestSchema).serialize,
      codec(CheckStreamResponseSchema).deserialize,
    );
    const got: CheckStreamResponse[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (m: CheckStreamResponse) => got.push(m));
      call.on("end", resolve);
      call.on("error", reject);
    });
    for (let i = 1; i <= 100; i++) {
      call.write(
        create(CheckStreamRequestSchema, {
          check: {
            requestId: BigInt(i),
            kind: Kind.FILE,
            operation: i === 50 ? Operation.UNSPECIFIED : Operation.WRITE,
            path: i % 2 ? "C:\\w\\x" : "C:\\elsewhere",
            session,
          },
        }),
      );
    }
    call.end();
    await done;
    expect(got).toHaveLength(100);
    const byId = new Map(got.map((g) => [g.result.value!.requestId, g]));
    expect(byId.get(1n)!.result).toMatchObject({ case: "response", value: { decision: Decision.ALLOW } });
    expect(byId.get(2n)!.result).toMatchObject({ case: "response", value: { decision: Decision.DENY } });
    expect(byId.get(50n)!.result).toMatchObject({ case: "error", value: { code: "invalid_argument" } });
  });

  it("batches on the stream: announced in a header, answered in one message, errors by request id", async () => {
    const call = client.makeBidiStreamRequest(
      "/agentsh.v1.PolicyService/CheckStream",
      codec(CheckStreamRequestSchema).serialize,
      codec(CheckStreamResponseSchema).deserialize,
    );
    const header = new Promise<string | undefined>((r) =>
      call.on("metadata", (md: grpc.Metadata) => r(md.get("agentsh-check-batch")[0] as string | undefined)),
    );
    const got: CheckStreamResponse[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (m: CheckStreamResponse) => got.push(m));
      call.on("end", resolve);
      call.on("error", reject);
    });
    const check = (id: number, path: string, operation = Operation.WRITE) => ({
      requestId: BigInt(id),
      kind: Kind.FILE,
      operation,
      path,
      session,
    });
    call.write(
      create(CheckStreamRequestSchema, {
        check: check(1, "C:\\w\\first"),
        checks: [
          check(2, "C:\\w\\x"),
          check(3, "C:\\elsewhere"),
          check(4, "C:\\w\\y", Operation.UNSPECIFIED),
        ],
      }),
    );
    call.write(create(CheckStreamRequestSchema, { check: check(5, "C:\\w\\alone") }));
    call.end();
    await done;
    expect(await header).toBe("1");
    expect(got).toHaveLength(2);
    const [batch, alone] = got;
    expect(batch!.result.case).toBeUndefined();
    expect(batch!.responses.map((r) => [r.requestId, r.decision])).toEqual([
      [1n, Decision.ALLOW],
      [2n, Decision.ALLOW],
      [3n, Decision.DENY],
    ]);
    expect(batch!.errors).toMatchObject([{ requestId: 4n, code: "invalid_argument" }]);
    expect(alone!.result).toMatchObject({
      case: "response",
      value: { requestId: 5n, decision: Decision.ALLOW },
    });
  });
  it("does not compress a batch of answers, even for a client that accepts gzip", async () => {
    const checks = Array.from({ length: 64 }, (_, i) => ({
      requestId: BigInt(i + 1),
      kind: Kind.FILE,
      operation: Operation.WRITE,
      path: `C:\\elsewhere\\${"long-name-".repeat(8)}${i}`,
      session,
    }));
    const body = toBinary(CheckStreamRequestSchema, create(CheckStreamRequestSchema, { checks }));
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    const session2 = http2.connect(`http://127.0.0.1:${server.port}`);
    const req = session2.request({
      ":method": "POST",
      ":path": "/agentsh.v1.PolicyService/CheckStream",
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-accept-encoding": "gzip,deflate,identity",
    });
    const chunks: Buffer[] = [];
    const headers = new Promise((r) => req.on("response", r));
    req.on("data", (d: Buffer) => chunks.push(d));
    const ended = new Promise((r) => req.on("end", r));
    req.end(frame);
    await headers; // (grpc-encoding names what the server may use; each message's flag says)
    await ended;
    session2.close();
    const out = Buffer.concat(chunks);
    expect(out[0]).toBe(0); // the message's compressed flag
    const len = out.readUInt32BE(1);
    expect(len).toBeGreaterThan(1024); // would have been compressed with the default threshold
    expect(len).toBeLessThan(RESPONSE_COMPRESS_MIN_BYTES);
    const res = fromBinary(CheckStreamResponseSchema, out.subarray(5, 5 + len));
    expect(res.responses).toHaveLength(64);
  });

  it("health Check, List and the policy version in metadata", async () => {
    const hc = codec(health.HealthCheckRequestSchema);
    const hr = codec(health.HealthCheckResponseSchema);
    const call = (service: string) =>
      new Promise<{ status: number; meta: grpc.Metadata; err?: grpc.ServiceError }>((resolve) => {
        let meta = new grpc.Metadata();
        const c = client.makeUnaryRequest(
          "/grpc.health.v1.Health/Check",
          hc.serialize,
          hr.deserialize,
          create(health.HealthCheckRequestSchema, { service }),
          (err, res) => resolve({ status: res?.status ?? -1, meta, ...(err ? { err } : {}) }),
        );
        c.on("metadata", (m) => (meta = m));
      });
    const ok = await call("");
    expect(ok.status).toBe(health.HealthCheckResponse_ServingStatus.SERVING);
    expect(String(ok.meta.get("agentsh-policy-version")[0])).toBe(server.store.current.version);
    expect((await call("agentsh.v1.PolicyService")).status).toBe(
      health.HealthCheckResponse_ServingStatus.SERVING,
    );
    expect((await call("nope")).err?.code).toBe(grpc.status.NOT_FOUND);
  });
});

describe("Connect, gRPC-Web and gRPC via @connectrpc/connect-node", () => {
  const transports = {
    "connect h2": () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
    "connect http/1.1": () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    "grpc-web http/1.1": () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    "grpc h2": () => createGrpcTransport({ baseUrl: server.url }),
  };
  for (const [name, make] of Object.entries(transports)) {
    it(name, async () => {
      const c = createClient(PolicyService, make());
      const r = await c.check({
        requestId: 7n,
        kind: Kind.FILE,
        operation: Operation.CREATE,
        path: "C:/w/new.txt",
        session,
      });
      expect(r).toMatchObject({ requestId: 7n, decision: Decision.ALLOW, rule: "workspace" });
      const err = await c.check({ kind: Kind.FILE, operation: Operation.CREATE, path: "" }).catch((e) => e);
      expect(ConnectError.from(err).code).toBe(Code.InvalidArgument);
      expect(ConnectError.from(err).rawMessage).toBe("path is required");
    });
  }
  it("Connect JSON: a field the API does not have is refused, named", async () => {
    const post = (body: unknown) =>
      fetch(`${server.url}/agentsh.v1.PolicyService/Check`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const ok = await post({ kind: "KIND_FILE", operation: "OPERATION_READ", path: "C:\\x" });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ decision: "DECISION_ALLOW" });
    const bad = await post({
      kind: "KIND_FILE",
      operation: "OPERATION_RENAME",
      path: "C:\\x",
      renameDst: "C:\\y",
    });
    expect(bad.status).toBe(400);
    const err = (await bad.json()) as { code: string; message: string };
    expect(err.code).toBe("invalid_argument");
    expect(err.message).toMatch(/renameDst/);
  });
  it("health over Connect", async () => {
    const h = createClient(health.Health, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
    const l = await h.list({});
    expect(l.statuses[""]?.status).toBe(health.HealthCheckResponse_ServingStatus.SERVING);
  });
});

describe("hot reload and the watch stream", () => {
  it("good file: new version announced; bad file: last good version keeps serving", async () => {
    const watch = client.makeServerStreamRequest(
      "/agentsh.v1.PolicyService/WatchPolicy",
      codec(WatchPolicyRequestSchema).serialize,
      codec(WatchPolicyResponseSchema).deserialize,
      create(WatchPolicyRequestSchema, {}),
    );
    const seen: WatchPolicyResponse[] = [];
    let notify: (() => void) | undefined;
    watch.on("data", (m: WatchPolicyResponse) => {
      seen.push(m);
      notify?.();
    });
    watch.on("error", () => {});
    const waitFor = async (n: number) => {
      const deadline = Date.now() + 5000;
      while (seen.length < n && Date.now() < deadline)
        await new Promise<void>((r) => {
          notify = r;
          setTimeout(r, 50);
        });
    };
    await waitFor(1);
    const v1 = server.store.current.version;
    expect(seen[0]).toMatchObject({ version: v1, name: "server-test" });

    writeFileSync(
      file,
      POLICY.replace("name: server-test", "name: server-test-2").replace(
        "decision: deny\n    message",
        "decision: audit\n    message",
      ),
    );
    await waitFor(2);
    expect(seen[1]).toMatchObject({ previousVersion: v1, name: "server-test-2" });
    expect(seen[1]!.version).toMatch(/^2-/);
    expect(
      (await unary({ kind: Kind.FILE, operation: Operation.READ, path: "C:\\Users\\a\\.ssh\\k" })).decision,
    ).toBe(Decision.AUDIT);

    writeFileSync(file, `${POLICY}\n  - name: broken\n    pathz: []\n`);
    await new Promise((r) => setTimeout(r, 600));
    expect(seen).toHaveLength(2);
    const r = await unary({ kind: Kind.FILE, operation: Operation.READ, path: "C:\\Users\\a\\.ssh\\k" });
    expect(r.decision).toBe(Decision.AUDIT);
    expect(r.policyVersion).toBe(seen[1]!.version);
    const bad = server.reload();
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.format()).toMatch(/policy\.yaml:16:5: error: .*missing "paths"/);
    watch.cancel();
  });
});

describe("graceful shutdown", () => {
  it("ends watch streams and stops accepting", async () => {
    const s = await startPolicyServer({ address: "127.0.0.1:0", policyText: POLICY });
    const c = createClient(PolicyService, createConnectTransport({ baseUrl: s.url, httpVersion: "2" }));
    const it = c.watchPolicy({})[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ name: "server-test" });
    const pending = it.next();
    await s.close();
    expect((await pending).done).toBe(true);
    await expect(c.check({ kind: Kind.FILE, operation: Operation.READ, path: "C:\\x" })).rejects.toThrow();
  });

  it("ends an idle CheckStream cleanly, without waiting out the grace period", async () => {
    const s = await startPolicyServer({ address: "127.0.0.1:0", policyText: POLICY, shutdownGraceMs: 5000 });
    const c = new grpc.Client(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
    const call = c.makeBidiStreamRequest(
      "/agentsh.v1.PolicyService/CheckStream",
      codec(CheckStreamRequestSchema).serialize,
      codec(CheckStreamResponseSchema).deserialize,
    );
    const answered = new Promise((r) => call.once("data", r));
    const status = new Promise<grpc.StatusObject>((r) => call.on("status", r));
    call.on("error", () => {});
    call.write(
      create(CheckStreamRequestSchema, {
        check: { requestId: 1n, kind: Kind.FILE, operation: Operation.READ, path: "C:\\x" },
      }),
    );
    await answered;
    const t0 = Date.now();
    await s.close();
    expect(Date.now() - t0).toBeLessThan(2500); // well under the 5 s grace: the stream ended itself
    expect((await status).code).toBe(grpc.status.OK);
    c.close();
  });

  it("bounds the streams a client may open on one connection", async () => {
    const session = http2.connect(server.url);
    await new Promise((r) => session.once("remoteSettings", r));
    expect(session.remoteSettings.maxConcurrentStreams).toBe(MAX_CONCURRENT_STREAMS);
    session.close();
  });
});
