// The light spans of the decision path (light-trace.ts): what reaches an OTLP collector through the
// SDK's own exporter is what the SDK's spans make, sampling follows the parent as the SDK's
// parent-based samplers do, the W3C trace context round-trips, and spans reach the processors in
// batches without being lost.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace } from "@opentelemetry/api";
import {
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { afterEach, describe, expect, it } from "vitest";
import {
  deferRemoteChild,
  extractTraceContext,
  FLUSH_MS,
  injectTraceContext,
  LightSpan,
  LightTracer,
  lightTracing,
  recordCarrier,
  SPAN_BATCH,
  tracerFor,
} from "./light-trace.js";
import { startSdk, type Telemetry } from "./sdk.js";
import { rootSpanContext } from "./trace.js";

const SCOPE = { name: "light-test", version: "1.2.3" };
const TID = "0af7651916cd43dd8448eb211c80319c";
const SID = "b7ad6b7169203331";

let running: Telemetry | undefined;
afterEach(async () => {
  await running?.shutdown();
  running = undefined;
});

async function start(env: Record<string, string>, exporter?: InMemorySpanExporter): Promise<Telemetry> {
  running = await startSdk({
    service: "agentsh-light-test",
    version: "0",
    defaultPrometheusPort: 0,
    env: { OTEL_METRICS_EXPORTER: "none", ...env },
    ...(exporter ? { spanProcessors: [new SimpleSpanProcessor(exporter)] } : {}),
  });
  return running;
}

/** An OTLP/HTTP JSON collector that keeps what it is sent. */
async function jsonCollector(): Promise<{ url: string; bodies: unknown[]; close: () => void }> {
  const bodies: unknown[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => {
      body += d.toString("utf8");
    });
    req.on("end", () => {
      if (req.url === "/v1/traces") bodies.push(JSON.parse(body));
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: () => server.close(),
  };
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes: { key: string; value: Record<string, unknown> }[];
  status: { code?: number; message?: string };
}

/** Every span of every export, with its scope and the resource's attributes. */
function spansOf(bodies: unknown[]): { span: OtlpSpan; scope: unknown; resource: Record<string, unknown> }[] {
  const out: { span: OtlpSpan; scope: unknown; resource: Record<string, unknown> }[] = [];
  for (const b of bodies as {
    resourceSpans: {
      resource: { attributes: { key: string; value: { stringValue?: string } }[] };
      scopeSpans: { scope: unknown; spans: OtlpSpan[] }[];
    }[];
  }[]) {
    for (const rs of b.resourceSpans) {
      const resource = Object.fromEntries(rs.resource.attributes.map((a) => [a.key, a.value.stringValue]));
      for (const ss of rs.scopeSpans)
        for (const span of ss.spans) out.push({ span, scope: ss.scope, resource });
    }
  }
  return out;
}

/** A root CLIENT span and its child, as the broker makes them, ended; the child failed. */
function decision(tracer: ReturnType<ReturnType<typeof tracerFor>>, prefix: string): void {
  const root = tracer.startSpan(
    `${prefix}.decide`,
    { kind: SpanKind.CLIENT, attributes: { "agentsh.kind": "file", "agentsh.operation": "write" } },
    rootSpanContext(),
  );
  const child = tracer.startSpan(
    `${prefix}.rpc`,
    { kind: SpanKind.CLIENT, attributes: { "rpc.system": "grpc" } },
    trace.setSpan(ROOT_CONTEXT, root),
  );
  child.setAttribute("rpc.grpc.status_code", 14);
  child.setStatus({ code: SpanStatusCode.ERROR, message: "unavailable" });
  child.end();
  root.setAttributes({ "agentsh.decision": "deny", "agentsh.cached": false });
  root.end();
}

describe("light spans", () => {
  it("reach an OTLP collector through the SDK's exporter as the SDK's own spans do", async () => {
    const collector = await jsonCollector();
    try {
      const t = await start({
        OTEL_TRACES_EXPORTER: "otlp",
        OTEL_TRACES_SAMPLER: "parentbased_always_on",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      });
      const light = tracerFor(SCOPE)();
      expect(light).toBeInstanceOf(LightTracer);
      const before = Date.now();
      decision(light, "light");
      decision(trace.getTracer(SCOPE.name, SCOPE.version), "sdk"); // the SDK's tracer, same processors
      await t.flush();
      const all = spansOf(collector.bodies);
      expect(all.map((s) => s.span.name).sort()).toEqual([
        "light.decide",
        "light.rpc",
        "sdk.decide",
        "sdk.rpc",
      ]);
      const by = (n: string) => all.find((s) => s.span.name === n)!;
      for (const p of ["light", "sdk"]) {
        const root = by(`${p}.decide`);
        const child = by(`${p}.rpc`);
        expect(root.resource["service.name"]).toBe("agentsh-light-test");
        expect(root.scope).toMatchObject({ name: SCOPE.name, version: SCOPE.version });
        expect(child.span.traceId).toBe(root.span.traceId);
        expect(child.span.parentSpanId).toBe(root.span.spanId);
        expect(root.span.parentSpanId ?? "").toBe("");
        expect(child.span.status).toMatchObject({ code: 2, message: "unavailable" });
        const startMs = Number(BigInt(root.span.startTimeUnixNano) / 1_000_000n);
        const endMs = Number(BigInt(root.span.endTimeUnixNano) / 1_000_000n);
        expect(startMs).toBeGreaterThanOrEqual(before - 5);
        expect(endMs).toBeGreaterThanOrEqual(startMs);
        expect(endMs).toBeLessThanOrEqual(Date.now() + 5);
      }
      // Same fields, same values but ids and times: light and SDK spans are one thing to a collector.
      const shape = (s: OtlpSpan) => ({
        ...s,
        name: s.name.replace(/^(light|sdk)\./, ""),
        traceId: s.traceId.length,
        spanId: s.spanId.length,
        parentSpanId: s.parentSpanId ? s.parentSpanId.length : 0,
        startTimeUnixNano: 0,
        endTimeUnixNano: 0,
      });
      for (const n of ["decide", "rpc"]) {
        expect(shape(by(`light.${n}`).span)).toEqual(shape(by(`sdk.${n}`).span));
        expect(by(`light.${n}`).resource).toEqual(by(`sdk.${n}`).resource);
      }
    } finally {
      collector.close();
    }
  });

  it("follow the parent's sampled flag; roots follow the configured ratio", async () => {
    const exporter = new InMemorySpanExporter();
    await start({ OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0" }, exporter);
    const tracer = tracerFor(SCOPE)();
    expect(tracer).toBeInstanceOf(LightTracer);
    expect(rootSpanContext()).toBeUndefined(); // ratio 0: no root is sampled
    expect(tracer.startSpan("root").isRecording()).toBe(false);

    const unsampled = extractTraceContext({ traceparent: `00-${TID}-${SID}-00` }, recordCarrier);
    const a = tracer.startSpan("a", { kind: SpanKind.SERVER }, unsampled);
    expect(a.isRecording()).toBe(false);
    expect(a.spanContext()).toMatchObject({ traceId: TID, traceFlags: TraceFlags.NONE });

    const sampled = extractTraceContext({ traceparent: `00-${TID}-${SID}-01` }, recordCarrier);
    const b = tracer.startSpan("b", { kind: SpanKind.SERVER }, sampled);
    expect(b).toBeInstanceOf(LightSpan);
    expect(b.spanContext()).toMatchObject({ traceId: TID, traceFlags: TraceFlags.SAMPLED });
    expect(b.spanContext().spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(b.spanContext().spanId).not.toBe(SID);
    expect((b as LightSpan).parentSpanContext).toMatchObject({ traceId: TID, spanId: SID, isRemote: true });
    b.end();
    await running!.flush();
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(["b"]);
  });

  it("are the SDK's for samplers that are not parent-based", async () => {
    await start({ OTEL_TRACES_SAMPLER: "always_on" }, new InMemorySpanExporter());
    const tracer = tracerFor(SCOPE)();
    expect(tracer).not.toBeInstanceOf(LightTracer);
    const s = tracer.startSpan("x");
    expect(s.isRecording()).toBe(true);
    expect(s).not.toBeInstanceOf(LightSpan);
    s.end();
  });

  it("reach the processors in batches, and a flush delivers every one", async () => {
    // A processor that records onEnd calls as they happen (the SDK's simple processor exports later).
    const got: ReadableSpan[] = [];
    const recorder: SpanProcessor = {
      onStart: () => {},
      onEnd: (s) => got.push(s),
      forceFlush: async () => {},
      shutdown: async () => {},
    };
    running = await startSdk({
      service: "agentsh-light-test",
      version: "0",
      defaultPrometheusPort: 0,
      env: { OTEL_METRICS_EXPORTER: "none", OTEL_TRACES_SAMPLER: "parentbased_always_on" },
      spanProcessors: [recorder],
    });
    const tracer = tracerFor(SCOPE)();
    for (let i = 0; i < SPAN_BATCH - 1; i++) tracer.startSpan(`s${i}`).end();
    expect(got).toHaveLength(0);
    tracer.startSpan("last").end(); // a full batch goes at once
    expect(got).toHaveLength(SPAN_BATCH);
    tracer.startSpan("late").end(); // one alone goes after FLUSH_MS
    expect(got).toHaveLength(SPAN_BATCH);
    await new Promise((r) => setTimeout(r, FLUSH_MS + 100));
    expect(got).toHaveLength(SPAN_BATCH + 1);
    for (let i = 0; i < 10; i++) tracer.startSpan(`f${i}`).end();
    await running.flush();
    expect(got).toHaveLength(SPAN_BATCH + 11);
    const names = got.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    expect(got.every((s) => s.ended)).toBe(true);
  });

  it("recorded on the hot path are made at the flush, for sampled remote parents only", async () => {
    const exporter = new InMemorySpanExporter();
    const t = await start(
      { OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0" },
      exporter,
    );
    expect(lightTracing()).toBe(true);
    const t0 = performance.now();
    const attrs = { "rpc.system": "grpc", "agentsh.rule": "secrets" };
    const rec = (tp: string, ts?: string, status?: { code: SpanStatusCode; message: string }) =>
      deferRemoteChild(SCOPE, "svc/Check", SpanKind.SERVER, tp, ts, t0, t0 + 2.5, attrs, status);
    rec(`00-${TID}-${SID}-01`, "vendor=abc");
    rec(`00-${TID}-${SID}-00`); // parent not sampled: no span
    rec("00-garbage"); // malformed: no span
    rec(`00-${TID}-${SID}-01`, undefined, { code: SpanStatusCode.ERROR, message: "engine failed" });
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    await t.flush();
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(2);
    for (const s of spans) {
      expect(s).toBeInstanceOf(LightSpan);
      expect(s.name).toBe("svc/Check");
      expect(s.kind).toBe(SpanKind.SERVER);
      expect(s.spanContext().traceId).toBe(TID);
      expect(s.spanContext().spanId).not.toBe(SID);
      expect(s.parentSpanContext).toMatchObject({ traceId: TID, spanId: SID, isRemote: true });
      expect(s.attributes).toEqual(attrs);
      // The times recorded, not the flush's: 2.5 ms apart.
      expect(s.duration[0] * 1e9 + s.duration[1]).toBeCloseTo(2.5e6, -3);
    }
    expect(spans[0]!.spanContext().traceState?.get("vendor")).toBe("abc");
    expect(spans[0]!.status).toEqual({ code: SpanStatusCode.UNSET });
    expect(spans[1]!.status).toEqual({ code: SpanStatusCode.ERROR, message: "engine failed" });
    await t.shutdown();
    running = undefined;
    expect(lightTracing()).toBe(false);
  });

  it("keep the Span API's rules: no change after end, one end, OK is final, events and exceptions", async () => {
    const exporter = new InMemorySpanExporter();
    const t = await start({ OTEL_TRACES_SAMPLER: "parentbased_always_on" }, exporter);
    const s = tracerFor(SCOPE)().startSpan("s", { attributes: { a: 1, empty: undefined } });
    s.setAttribute("", "no key");
    s.setStatus({ code: SpanStatusCode.OK });
    s.setStatus({ code: SpanStatusCode.ERROR, message: "too late" });
    s.addEvent("e1", { n: 1 });
    s.recordException(new TypeError("boom"));
    s.updateName("renamed");
    s.end();
    s.setAttribute("after", true);
    s.updateName("after");
    s.end();
    await t.flush();
    const done = exporter.getFinishedSpans();
    expect(done).toHaveLength(1);
    const r = done[0]!;
    expect(r.name).toBe("renamed");
    expect(r.attributes).toEqual({ a: 1 });
    expect(r.status).toEqual({ code: SpanStatusCode.OK });
    expect(r.events.map((e) => e.name)).toEqual(["e1", "exception"]);
    expect(r.events[1]!.attributes).toMatchObject({
      "exception.type": "TypeError",
      "exception.message": "boom",
    });
    expect(r.ended).toBe(true);
    expect(r.duration[0] * 1e9 + r.duration[1]).toBeGreaterThanOrEqual(0);
  });
});

describe("W3C trace context", () => {
  it("round-trips a span's context and tracestate; malformed traceparents give no parent", async () => {
    await start({ OTEL_TRACES_SAMPLER: "parentbased_always_on" }, new InMemorySpanExporter());
    const parent = extractTraceContext(
      { traceparent: `00-${TID}-${SID}-01`, tracestate: "vendor=abc,other=1" },
      recordCarrier,
    );
    const span = tracerFor(SCOPE)().startSpan("s", {}, parent);
    const carrier: Record<string, string> = {};
    injectTraceContext(span, carrier, recordCarrier);
    expect(carrier.traceparent).toBe(`00-${TID}-${span.spanContext().spanId}-01`);
    expect(carrier.tracestate).toBe("vendor=abc,other=1");
    const back = trace.getSpanContext(extractTraceContext(carrier, recordCarrier));
    expect(back).toMatchObject({ traceId: TID, spanId: span.spanContext().spanId, isRemote: true });
    span.end();
    for (const bad of [
      "garbage",
      `00-${"0".repeat(32)}-${SID}-01`,
      `00-${TID}-${"0".repeat(16)}-01`,
      `ff-${TID}-${SID}-01`,
      `00-${TID}-${SID}-01-extra`,
      `00-${TID.toUpperCase()}-${SID}-01`,
    ]) {
      expect(
        trace.getSpanContext(extractTraceContext({ traceparent: bad }, recordCarrier)),
        bad,
      ).toBeUndefined();
    }
    expect(trace.getSpanContext(extractTraceContext({}, recordCarrier))).toBeUndefined();
  });

  it("goes through the configured propagators when they are not only W3C (OTEL_PROPAGATORS)", async () => {
    await start(
      { OTEL_TRACES_SAMPLER: "parentbased_always_on", OTEL_PROPAGATORS: "b3" },
      new InMemorySpanExporter(),
    );
    const span = tracerFor(SCOPE)().startSpan("s");
    const carrier: Record<string, string> = {};
    injectTraceContext(span, carrier, recordCarrier);
    expect(carrier.traceparent).toBeUndefined();
    expect(carrier.b3).toBe(`${span.spanContext().traceId}-${span.spanContext().spanId}-1`);
    expect(trace.getSpanContext(extractTraceContext(carrier, recordCarrier))).toMatchObject({
      traceId: span.spanContext().traceId,
      spanId: span.spanContext().spanId,
    });
    span.end();
  });
});
