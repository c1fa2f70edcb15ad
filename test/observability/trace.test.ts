// One trace per uncached decision, from the broker through gRPC into the policy server's
// evaluation: real simulator, broker and server (in this process), spans kept in memory.
import { CheckRequestSchema, Kind, Operation } from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unary } from "../../broker/src/relay/relay-grpc.js";
import { startTelemetry, type Telemetry } from "../../broker/src/telemetry.js";
import { POLICY_SERVICE, RpcCall, startDecisionSpan } from "../../broker/src/telemetry-trace.js";
import { type Stack, sleep, startStack } from "../e2e/harness.js";

const POLICY = `
version: 1
name: trace
mode: enforce
default_action: deny
default_read_action: allow
file_rules:
  - name: secrets
    paths: ['C:\\Users\\*\\.ssh\\**']
    operations: [read, write]
    decision: deny
    cache_ttl: 30s
`;

const exporter = new InMemorySpanExporter();
let telemetry: Telemetry;
let stack: Stack;

beforeAll(async () => {
  telemetry = await startTelemetry("agentsh-trace-test", {
    env: { OTEL_METRICS_EXPORTER: "none", OTEL_TRACES_SAMPLER: "parentbased_always_on" },
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  stack = await startStack({ policy: POLICY });
  stack.broker.registerSession({
    token: 5n,
    rootPid: 500,
    workspace: "C:\\work\\repo",
    userSid: "S-1-5-21-1-2-3-1001",
    userProfile: "C:\\Users\\dev",
    agent: "trace",
  });
});

afterAll(async () => {
  await stack?.stop();
  await telemetry?.shutdown();
});

const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

async function waitSpans(n: number, pred: (s: ReadableSpan) => boolean): Promise<ReadableSpan[]> {
  for (let i = 0; i < 100; i++) {
    const got = exporter.getFinishedSpans().filter(pred);
    if (got.length >= n) return got;
    await sleep(20);
  }
  return exporter.getFinishedSpans().filter(pred);
}

describe("traces", () => {
  it("one trace spans broker and server for an uncached decision, with the rule on it", async () => {
    exporter.reset();
    const r = await stack.sim.ctl.file(500, "read", "C:\\Users\\dev\\.ssh\\id_rsa");
    expect(r).toMatchObject({ result: "deny", source: "broker" });
    const [decide] = await waitSpans(1, (s) => s.name === "agentsh.decide");
    expect(decide).toBeDefined();
    const traceId = decide!.spanContext().traceId;
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    // Two spans: the broker's decision (CLIENT, its RPC) -> the server's check (SERVER), one trace.
    expect(spans).toHaveLength(2);
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(decide!.kind).toBe(SpanKind.CLIENT);
    expect(server.name).toBe(`${POLICY_SERVICE}/CheckStream`);
    expect(parentOf(server)).toBe(decide!.spanContext().spanId);
    expect(parentOf(decide!)).toBeUndefined();
    expect(server.attributes).toMatchObject({
      "agentsh.rule": "secrets",
      "agentsh.decision": "deny",
      "rpc.system": "grpc",
      "rpc.method": "CheckStream",
    });
    expect(String(server.attributes["agentsh.policy_version"])).toMatch(/^\d+-/);
    expect(decide!.attributes).toMatchObject({
      "agentsh.rule": "secrets",
      "agentsh.source": "server",
      "agentsh.enforced": "deny",
      "agentsh.kind": "file",
      "agentsh.operation": "read",
    });
    expect(decide!.attributes).toMatchObject({ "rpc.method": "CheckStream", "rpc.grpc.status_code": 0 });
    // no path on any span
    for (const s of spans) expect(JSON.stringify(s.attributes)).not.toContain("id_rsa");

    // The same question again is a driver cache hit: no new trace.
    exporter.reset();
    expect(await stack.sim.ctl.file(500, "read", "C:\\Users\\dev\\.ssh\\id_rsa")).toMatchObject({
      source: "cache",
    });
    await sleep(100);
    expect(exporter.getFinishedSpans()).toHaveLength(0);
  });

  it("unary calls carry the context in gRPC metadata, read by the server's interceptor", async () => {
    exporter.reset();
    const root = startDecisionSpan({});
    const rpc = new RpcCall(POLICY_SERVICE, "Check", root);
    const req = create(CheckRequestSchema, {
      kind: Kind.FILE,
      operation: Operation.WRITE,
      path: "C:\\Users\\dev\\.ssh\\config",
      session: { token: 5n, userProfile: "C:\\Users\\dev", workspace: "C:\\work\\repo" },
    });
    await unary(stack.broker.channel.policy, "check", req, Date.now() + 2000, rpc.metadata());
    rpc.end();
    root.end();
    const spans = await waitSpans(3, () => true);
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(server.name).toBe(`${POLICY_SERVICE}/Check`);
    expect(server.spanContext().traceId).toBe(root.spanContext().traceId);
    expect(parentOf(server)).toBe(rpc.span.spanContext().spanId);
    expect(parentOf(rpc.span as unknown as ReadableSpan)).toBe(root.spanContext().spanId);
    expect(server.attributes["agentsh.rule"]).toBe("secrets");
    expect(server.attributes["rpc.grpc.status_code"]).toBe(0);
  });

  it("a check's own trace context: traceparent and tracestate, or the map of older brokers", async () => {
    const TID = "4bf92f3577b34da6a3ce929d0e0e4736";
    type TraceFields = { traceparent?: string; tracestate?: string; traceContext?: Record<string, string> };
    const ask = async (fields: TraceFields, parent: string) => {
      exporter.reset();
      const req = create(CheckRequestSchema, {
        kind: Kind.FILE,
        operation: Operation.READ,
        path: "C:\\Users\\dev\\.ssh\\known_hosts",
        session: { token: 5n, userProfile: "C:\\Users\\dev", workspace: "C:\\work\\repo" },
        ...fields,
      });
      // No metadata: the server reads the context from the check itself.
      await unary(stack.broker.channel.policy, "check", req, Date.now() + 2000);
      const [server] = await waitSpans(1, (s) => s.kind === SpanKind.SERVER);
      expect(server?.spanContext().traceId).toBe(TID);
      expect(parentOf(server!)).toBe(parent);
      expect(server!.attributes["agentsh.rule"]).toBe("secrets");
      return server!;
    };
    const fields = await ask(
      { traceparent: `00-${TID}-00f067aa0ba902b7-01`, tracestate: "vendor=a" },
      "00f067aa0ba902b7",
    );
    expect(fields.parentSpanContext?.traceState?.get("vendor")).toBe("a");
    const map = await ask(
      { traceContext: { traceparent: `00-${TID}-b7ad6b7169203331-01`, tracestate: "vendor=b" } },
      "b7ad6b7169203331",
    );
    expect(map.parentSpanContext?.traceState?.get("vendor")).toBe("b");
    // Untraced: no span.
    exporter.reset();
    const req = create(CheckRequestSchema, { kind: Kind.FILE, operation: Operation.READ, path: "C:\\x" });
    await unary(stack.broker.channel.policy, "check", req, Date.now() + 2000);
    await sleep(300);
    expect(exporter.getFinishedSpans()).toHaveLength(0);
  });
});
