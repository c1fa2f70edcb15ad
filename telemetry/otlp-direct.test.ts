// The fixed-shape records' OTLP path (otlp-direct.ts): the bytes it sends are the bytes the SDK's
// own pipeline would send for the same records, it batches as the batch processor does, and records
// written through recordWriter reach a collector with it.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { ROOT_CONTEXT, type SpanContext, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { TraceState } from "@opentelemetry/core";
import { ProtobufLogsSerializer, ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { LoggerProvider, type SdkLogRecord } from "@opentelemetry/sdk-logs";
import { BasicTracerProvider, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LightTracer, tracerFor } from "./light-trace.js";
import { BATCH_MAX, createLogger, recordWriter } from "./log.js";
import { OtlpRecordSink, OtlpSpanExporter } from "./otlp-direct.js";
import { recordSink, startSdk } from "./sdk.js";

/** An OTLP/HTTP collector on loopback that keeps every request body by path. */
async function collector() {
  const bodies: { path: string; body: Buffer; type: string }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      bodies.push({
        path: req.url ?? "",
        body: Buffer.concat(chunks),
        type: String(req.headers["content-type"]),
      });
      res.writeHead(200, { "content-type": "application/x-protobuf" });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: () => new Promise((r) => server.close(r)),
  };
}

/** Runs `fn` with a collector that OTEL_EXPORTER_OTLP_<signal>_ENDPOINT points at, then closes it. */
async function withCollector(
  signal: "LOGS" | "TRACES",
  fn: (c: Awaited<ReturnType<typeof collector>>) => Promise<void>,
): Promise<void> {
  const c = await collector();
  vi.stubEnv(`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`, `${c.url}/v1/${signal.toLowerCase()}`);
  try {
    await fn(c);
  } finally {
    await c.close();
  }
}

type Value = string | number | boolean | undefined;
const KEYS = ["audit", "session", "pid", "path", "decision", "latency_ms", "", "rule", "offset"] as const;
const RECORDS: { time: number; values: Value[]; span?: SpanContext }[] = [
  {
    time: 1_795_337_284_364,
    values: [true, "s-1", 4242, "\\Device\\HarddiskVolume3\\a.txt", "deny", 1.25, "x", "r1", -7],
  },
  // Non-ASCII text, undefined fields left out, a float, a large integer, a sampled span.
  {
    time: 1_795_337_284_999,
    values: [
      true,
      "séance-✓",
      1,
      "C:\\Users\\日本語のユーザー\\Documents\\b.txt",
      "lone \ud800 surrogate, long enough",
      0.001,
      undefined,
      undefined,
      2 ** 40,
    ],
    span: { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: 1 },
  },
  { time: 1_795_337_290_001, values: [false, "", 0, "", "allow", 0, "", "", -(2 ** 33)] },
];

/** What the SDK's own pipeline serializes for `records`: LoggerProvider -> ProtobufLogsSerializer. */
function sdkBytes(
  resource: ReturnType<typeof resourceFromAttributes>,
  scope: string,
  records: typeof RECORDS,
  limits?: { attributeCountLimit?: number; attributeValueLengthLimit?: number },
): Uint8Array {
  const got: SdkLogRecord[] = [];
  const provider = new LoggerProvider({
    resource,
    ...(limits ? { logRecordLimits: limits } : {}),
    processors: [{ onEmit: (r) => got.push(r), forceFlush: async () => {}, shutdown: async () => {} }],
  });
  const logger = provider.getLogger(scope);
  for (const r of records) {
    const attributes: Record<string, string | number | boolean> = {};
    KEYS.forEach((k, i) => {
      const v = r.values[i];
      if (v !== undefined) attributes[k] = v;
    });
    logger.emit({
      timestamp: r.time,
      observedTimestamp: r.time,
      severityNumber: SeverityNumber.INFO,
      severityText: "INFO",
      body: "decision",
      attributes,
      ...(r.span ? { context: trace.setSpanContext(ROOT_CONTEXT, r.span) } : {}),
    });
  }
  return ProtobufLogsSerializer.serializeRequest(got)!;
}

afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

describe("OtlpRecordSink", () => {
  const resource = resourceFromAttributes({
    "service.name": "agentsh-broker",
    "host.name": "h1",
    "process.pid": 7,
  });

  it("sends the bytes the SDK's LoggerProvider and ProtobufLogsSerializer make of the same records", async () => {
    await withCollector("LOGS", async (c) => {
      const sink = new OtlpRecordSink(resource);
      const write = sink.encoder("agentsh-broker", "decision", KEYS);
      for (const r of RECORDS) write(r.time, r.values, r.span);
      await sink.flush();
      expect(c.bodies.map((b) => [b.path, b.type])).toEqual([["/v1/logs", "application/x-protobuf"]]);
      expect(
        Buffer.from(c.bodies[0]!.body).equals(Buffer.from(sdkBytes(resource, "agentsh-broker", RECORDS))),
      ).toBe(true);
      await sink.shutdown();
    });
  });

  it("grows its buffer for a batch larger than the first one (256 kB), with the same bytes", async () => {
    await withCollector("LOGS", async (c) => {
      const sink = new OtlpRecordSink(resource, { maxExportBatchSize: 4000, maxQueueSize: 4000 });
      const write = sink.encoder("agentsh-broker", "decision", KEYS);
      const many = Array.from({ length: 1500 }, (_, i) => ({
        time: 1_795_337_284_364 + i,
        values: [
          true,
          `s-${i}`,
          i,
          `C:\\Users\\${"ü".repeat(i % 300)}\\${i}.txt`,
          "deny",
          i / 7,
          "",
          "r",
          -i,
        ],
      }));
      for (const r of many) write(r.time, r.values, undefined);
      await sink.shutdown();
      expect(c.bodies.length).toBe(1);
      expect(c.bodies[0]!.body.length).toBeGreaterThan(512 * 1024);
      expect(
        Buffer.from(c.bodies[0]!.body).equals(Buffer.from(sdkBytes(resource, "agentsh-broker", many))),
      ).toBe(true);
    });
  });

  it("applies the attribute count and value length limits as the SDK does", async () => {
    await withCollector("LOGS", async (c) => {
      const limits = { attributeCountLimit: 3, attributeValueLengthLimit: 4 };
      const sink = new OtlpRecordSink(resource, limits);
      const write = sink.encoder("s", "decision", KEYS);
      for (const r of RECORDS) write(r.time, r.values, r.span);
      await sink.shutdown();
      expect(
        Buffer.from(c.bodies[0]!.body).equals(Buffer.from(sdkBytes(resource, "s", RECORDS, limits))),
      ).toBe(true);
    });
  });

  it("exports a full batch at once and the rest after the schedule delay; nothing after shutdown", async () => {
    await withCollector("LOGS", async (c) => {
      const sink = new OtlpRecordSink(resource, { maxExportBatchSize: 100, scheduleDelayMillis: 50 });
      const write = sink.encoder("s", "decision", KEYS);
      for (let i = 0; i < 250; i++) write(1_000 + i, RECORDS[0]!.values, undefined);
      await vi.waitFor(() => expect(c.bodies.length).toBe(3), { timeout: 5000 });
      const sizes = c.bodies.map((b) => b.body.length);
      expect(sizes[0]).toBe(sizes[1]); // two batches of 100
      expect(sizes[2]).toBeLessThan(sizes[0]!); // then the 50 left, after the delay
      await sink.shutdown();
      write(5_000, RECORDS[0]!.values, undefined);
      await sink.flush();
      expect(c.bodies.length).toBe(3);
    });
  });

  it("reports a failed export (the collector answers 400) and goes on", async () => {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(400);
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    vi.stubEnv(
      "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
      `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/logs`,
    );
    const errors: unknown[] = [];
    const { setGlobalErrorHandler, loggingErrorHandler } = await import("@opentelemetry/core");
    setGlobalErrorHandler((e) => errors.push(e));
    try {
      const sink = new OtlpRecordSink(resource);
      sink.encoder("s", "decision", KEYS)(1_000, RECORDS[0]!.values, undefined);
      await sink.shutdown();
      expect(errors.length).toBe(1);
    } finally {
      setGlobalErrorHandler(loggingErrorHandler());
      await new Promise((r) => server.close(r));
    }
  });
});

/** The LogRecords of an ExportLogsServiceRequest, as field number -> values (a minimal protobuf reader). */
function logRecords(body: Uint8Array): Map<number, Uint8Array[]>[] {
  const fields = (buf: Uint8Array): Map<number, Uint8Array[]> => {
    const m = new Map<number, Uint8Array[]>();
    let p = 0;
    const varint = (): number => {
      let v = 0;
      let shift = 0;
      for (;;) {
        const b = buf[p++]!;
        v += (b & 0x7f) * 2 ** shift;
        shift += 7;
        if (b < 0x80) return v;
      }
    };
    while (p < buf.length) {
      const tag = varint();
      const field = Math.floor(tag / 8);
      const wire = tag & 7;
      const start = p;
      if (wire === 0) varint();
      else if (wire === 1) p += 8;
      else if (wire === 5) p += 4;
      else if (wire === 2) {
        const n = varint();
        const from = p;
        p += n;
        m.set(field, [...(m.get(field) ?? []), buf.subarray(from, p)]);
        continue;
      } else throw new Error(`wire type ${wire}`);
      m.set(field, [...(m.get(field) ?? []), buf.subarray(start, p)]);
    }
    return m;
  };
  const out: Map<number, Uint8Array[]>[] = [];
  for (const rl of fields(body).get(1) ?? [])
    for (const sl of fields(rl).get(2) ?? []) for (const lr of fields(sl).get(2) ?? []) out.push(fields(lr));
  return out;
}

/** startSdk for these tests: metrics off, `env` on top. */
const startWith = (service: string, env: Record<string, string>) =>
  startSdk({
    service,
    version: "0",
    defaultPrometheusPort: 0,
    env: { OTEL_METRICS_EXPORTER: "none", ...env },
  });

describe("recordWriter with OTEL_LOGS_EXPORTER=otlp", () => {
  const quiet = () =>
    new Writable({
      write(_c, _e, cb) {
        cb();
      },
    });

  it("sends each record to the collector as an OTLP log record with its attributes, trace and time", async () => {
    const c = await collector();
    const t = await startWith("agentsh-records-test", {
      OTEL_LOGS_EXPORTER: "otlp",
      OTEL_EXPORTER_OTLP_ENDPOINT: c.url,
    });
    try {
      const sink = recordSink()!;
      expect(sink).toBeDefined();
      const logger = createLogger({ service: "agentsh-records-test", destination: quiet() });
      const write = recordWriter(logger, "decision", ["session", "pid", "path"]);
      const before = Date.now();
      write(["s-1", 10, "a"]);
      write(["s-2", 11, "b"], {
        traceId: "0af7651916cd43dd8448eb211c80319c",
        spanId: "b7ad6b7169203331",
        traceFlags: 1,
      });
      write(["s-3", 12, undefined]);
      const after = Date.now();
      // Held as they are written (a record is a rare event on the decision path, whose encoding runs
      // cold there: log.ts), then encoded together within about 100 ms without a flush; the export
      // still waits for its delay (1 s).
      expect(sink.pending()).toBe(0);
      await vi.waitFor(() => expect(sink.pending()).toBe(3), { timeout: 1500 });
      // A burst is encoded as each BATCH_MAX records are written, not held for the timer.
      for (let i = 0; i <= BATCH_MAX; i++) write([`s-${i + 4}`, i, "burst"]);
      expect(sink.pending()).toBe(3 + BATCH_MAX);
      await t.flush();
      const all = c.bodies.filter((b) => b.path === "/v1/logs").flatMap((b) => logRecords(b.body));
      expect(all.length).toBe(3 + BATCH_MAX + 1);
      const logs = all.slice(0, 3);
      // time_unix_nano and observed_time_unix_nano: when each was written, not when encoded
      const ms = (lr: Map<number, Uint8Array[]>, field: number) =>
        Number(Buffer.from(lr.get(field)![0]!).readBigUInt64LE() / 1_000_000n);
      for (const lr of logs)
        for (const f of [1, 11]) {
          expect(ms(lr, f)).toBeGreaterThanOrEqual(before);
          expect(ms(lr, f)).toBeLessThanOrEqual(after);
        }
      const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");
      expect(logs.map((r) => (r.get(6) ?? []).length)).toEqual([3, 3, 2]); // attributes
      expect(text(logs[0]!.get(6)![0]!)).toContain("session");
      expect(text(logs[0]!.get(6)![0]!)).toContain("s-1");
      expect(logs.map((r) => r.has(9))).toEqual([false, true, false]); // trace_id only when sampled
      expect(Buffer.from(logs[1]!.get(9)![0]!).toString("hex")).toBe("0af7651916cd43dd8448eb211c80319c");
    } finally {
      await t.shutdown();
      await c.close();
    }
    expect(recordSink()).toBeUndefined();
  });

  it("is not used with another protocol or exporter: the SDK's pipeline takes the records", async () => {
    const envs: Record<string, string>[] = [
      { OTEL_LOGS_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" },
      { OTEL_LOGS_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: "grpc" },
      { OTEL_LOGS_EXPORTER: "otlp,console" },
      { OTEL_LOGS_EXPORTER: "none" },
    ];
    for (const env of envs) {
      const t = await startWith("agentsh-records-test", {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9",
        ...env,
      });
      try {
        expect(recordSink(), JSON.stringify(env)).toBeUndefined();
      } finally {
        await t.shutdown();
      }
    }
  });
});

describe("OtlpSpanExporter", () => {
  const resource = resourceFromAttributes({ "service.name": "agentsh-policy", "host.name": "h1" });

  it("sends the bytes ProtobufTraceSerializer makes of the same spans (SDK spans: remote parent, links, events, status, attributes of every kind)", async () => {
    await withCollector("TRACES", async (c) => {
      const exporter = new OtlpSpanExporter(resource);
      const ended: ReadableSpan[] = [];
      const provider = new BasicTracerProvider({
        resource,
        spanProcessors: [
          {
            onStart() {},
            onEnd(s) {
              ended.push(s);
              exporter.onEnd(s);
            },
            forceFlush: async () => {},
            shutdown: async () => {},
          },
        ],
      });
      const tracer = provider.getTracer("agentsh-policy", "1.2.3");
      const remote = trace.setSpanContext(ROOT_CONTEXT, {
        traceId: "0af7651916cd43dd8448eb211c80319c",
        spanId: "b7ad6b7169203331",
        traceFlags: 1,
        isRemote: true,
        traceState: new TraceState("vendor=ü,x=1"),
      });
      const root = tracer.startSpan(
        "agentsh.v1.PolicyService/Check",
        {
          kind: SpanKind.SERVER,
          attributes: {
            "rpc.system": "grpc",
            "agentsh.rule": "deny-secrets",
            n: 3,
            f: 0.5,
            ok: true,
            list: ["a", "b"],
            // The writer's paths: a non-ASCII value and key, an empty value, values either side of
            // the length written by Buffer's encoder (48), and KeyValues of 127 and 128 bytes.
            mode: "ü-mode",
            clé: "v",
            empty: "",
            s47: "p".repeat(47),
            s48: "q".repeat(48),
            ["a".repeat(80)]: "x".repeat(41),
            ["b".repeat(80)]: "y".repeat(42),
          },
          links: [
            {
              context: { traceId: "1".repeat(32), spanId: "2".repeat(16), traceFlags: 0 },
              attributes: { why: "batch" },
            },
          ],
        },
        remote,
      );
      root.addEvent("evaluated", { rules: 12 });
      const child = tracer.startSpan(
        "evaluate",
        { kind: SpanKind.INTERNAL },
        trace.setSpan(ROOT_CONTEXT, root),
      );
      child.setStatus({ code: SpanStatusCode.ERROR, message: "no rule: é" });
      child.end();
      root.setStatus({ code: SpanStatusCode.OK });
      root.end();
      await exporter.flush();
      expect(c.bodies.map((b) => [b.path, b.type])).toEqual([["/v1/traces", "application/x-protobuf"]]);
      expect(
        Buffer.from(c.bodies[0]!.body).equals(Buffer.from(ProtobufTraceSerializer.serializeRequest(ended)!)),
      ).toBe(true);
      await exporter.shutdown();
    });
  });

  it("through startSdk, light spans and SDK spans reach the collector as the SDK's exporter sent them", async () => {
    const c = await collector();
    const t = await startWith("agentsh-direct-test", {
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_TRACES_SAMPLER: "parentbased_always_on",
      OTEL_EXPORTER_OTLP_ENDPOINT: c.url,
    });
    try {
      const light = tracerFor({ name: "agentsh-direct-test", version: "0" })();
      expect(light).toBeInstanceOf(LightTracer);
      const s = light.startSpan("light.decide", {
        kind: SpanKind.CLIENT,
        attributes: { "agentsh.decision": "deny" },
      });
      s.end();
      trace.getTracer("agentsh-direct-test", "0").startSpan("sdk.decide").end();
      await t.flush();
      const bodies = c.bodies.filter((b) => b.path === "/v1/traces");
      expect(bodies.length).toBeGreaterThan(0);
      const text = Buffer.concat(bodies.map((b) => b.body)).toString("latin1");
      expect(text).toContain("light.decide");
      expect(text).toContain("sdk.decide");
      expect(text).toContain("agentsh.decision");
    } finally {
      await t.shutdown();
      await c.close();
    }
  });
});
