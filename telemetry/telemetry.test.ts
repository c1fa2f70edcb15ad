// The hot-path pieces of @agentsh/telemetry: the fixed-shape record writer (its JSON lines are what
// JSON.parse reads back, for hostile strings too, and what pino writes), the array histograms (their
// data points are what was counted, as an SDK histogram reports them; its OpenTelemetry log records
// are emitted in batches and reach the SDK before it flushes) and root pre-sampling.
import { Writable } from "node:stream";
import { ROOT_CONTEXT, type Span, type SpanContext, TraceFlags, trace } from "@opentelemetry/api";
import { InMemoryLogRecordExporter, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import {
  AggregationTemporality,
  DataPointType,
  type HistogramMetricData,
  MeterProvider,
  MetricReader,
} from "@opentelemetry/sdk-metrics";
import { describe, expect, it } from "vitest";
import { otlpReceiver } from "../test/support/otlp-receiver.js";
import { createLogger, type FieldValue, isoTime, recordWriter } from "./log.js";
import { collectFastMetrics, FastHistogram, metricProducer } from "./metrics.js";
import { DEFAULT_TRACES_PER_SECOND, providersEpoch, startSdk } from "./sdk.js";
import {
  NOT_SAMPLED,
  recording,
  rootSampling,
  rootSpanContext,
  rootsUntilSampled,
  rootTraceBudget,
  samplerFor,
  setRootSampling,
  TraceBudget,
} from "./trace.js";

function sink(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _e, cb) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      cb();
    },
  });
  return { lines, stream };
}

const settle = () => new Promise((r) => setTimeout(r, 10));

const HOSTILE = [
  "plain",
  "",
  'quote " and backslash \\ and C:\\Users\\dev\\.ssh\\id_rsa',
  "controls \u0000\u0001\u0008\t\n\r\u000b\u000c\u001f\u007f",
  "line\u2028separator\u2029",
  "unicode é ü 漢字 😀",
  "lone surrogates \ud800 x \udfff",
  '"},{"level":60,"msg":"forged',
  "</script><!--",
];

describe("recordWriter", () => {
  const keys = ["audit", "path", "pid", "latency_ms", "missing", "nan", "ok"];

  it("writes lines JSON.parse reads back exactly, for hostile strings", async () => {
    const { lines, stream } = sink();
    const logger = createLogger({ service: 'svc "x"', destination: stream as never, otel: false });
    const write = recordWriter(logger, "decision\n", keys);
    for (const s of HOSTILE) write([true, s, 42, 0.125, undefined, Number.NaN, false]);
    await settle();
    expect(lines).toHaveLength(HOSTILE.length);
    lines.forEach((line, i) => {
      const o = JSON.parse(line) as Record<string, unknown>;
      expect(o).toEqual({
        level: 30,
        time: expect.any(String),
        service: 'svc "x"',
        audit: true,
        path: HOSTILE[i],
        pid: 42,
        latency_ms: 0.125,
        nan: null,
        ok: false,
        msg: "decision\n",
      });
      expect(new Date(o.time as string).toISOString()).toBe(o.time);
      // One record, one line.
      expect(line.includes("\n")).toBe(false);
    });
  });

  it("writes what pino writes for the same fields", async () => {
    const { lines, stream } = sink();
    const logger = createLogger({ service: "agentsh-broker", destination: stream as never, otel: false });
    const values: FieldValue[] = [true, 'C:\\a "b"\u0001', 7, 1.5, undefined, 3, true];
    const sc: SpanContext = {
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceFlags: TraceFlags.SAMPLED,
    };
    recordWriter(logger, "decision", keys)(values, sc);
    const fields: Record<string, unknown> = {};
    keys.forEach((k, i) => {
      if (values[i] !== undefined) fields[k] = values[i];
    });
    logger.info({ ...fields, trace_id: sc.traceId, span_id: sc.spanId, trace_flags: "01" }, "decision");
    await settle();
    expect(lines).toHaveLength(2);
    const strip = (l: string) => l.replace(/"time":"[^"]*"/, '"time":""');
    expect(strip(lines[0]!)).toBe(strip(lines[1]!));
  });

  it("leaves trace ids out of an unsampled span and respects the level", async () => {
    const { lines, stream } = sink();
    const logger = createLogger({ service: "s", destination: stream as never, otel: false, level: "warn" });
    const write = recordWriter(logger, "m", ["a"]);
    write(["x"]);
    logger.level = "info";
    write(["y"], { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: 0 });
    await settle();
    expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([
      { level: 30, time: expect.any(String), service: "s", a: "y", msg: "m" },
    ]);
  });
});

describe("recordWriter's OpenTelemetry log records", () => {
  it("are held briefly and emitted together, with their own times, and before a flush", async () => {
    // The in-memory exporter forgets its records when it shuts down: this one keeps them.
    const exporter = new (class extends InMemoryLogRecordExporter {
      override shutdown(): Promise<void> {
        return Promise.resolve();
      }
    })();
    const t = await startSdk({
      service: "s",
      version: "0",
      defaultPrometheusPort: 0,
      env: { OTEL_SDK_DISABLED: "false", OTEL_METRICS_EXPORTER: "none" },
      logRecordProcessors: [new SimpleLogRecordProcessor({ exporter })],
    });
    try {
      const { stream } = sink();
      const logger = createLogger({ service: "s", destination: stream as never, otel: true });
      const write = recordWriter(logger, "decision", ["a", "n"]);
      const before = Date.now();
      write(["x", 1]);
      write(["y", undefined], {
        traceId: "0af7651916cd43dd8448eb211c80319c",
        spanId: "b7ad6b7169203331",
        traceFlags: 1,
      });
      // Held: nothing has reached the SDK yet.
      expect(exporter.getFinishedLogRecords()).toHaveLength(0);
      await t.flush();
      const recs = exporter.getFinishedLogRecords();
      expect(recs.map((r) => r.attributes)).toEqual([{ a: "x", n: 1 }, { a: "y" }]);
      expect(recs.map((r) => r.body)).toEqual(["decision", "decision"]);
      expect(recs[1]!.spanContext?.spanId).toBe("b7ad6b7169203331");
      for (const r of recs) {
        const ms = r.hrTime[0] * 1000 + r.hrTime[1] / 1e6;
        expect(ms).toBeGreaterThanOrEqual(before - 1);
        expect(ms).toBeLessThanOrEqual(Date.now());
      }
      // Without a flush, the timer emits them.
      write(["z", 2]);
      for (let i = 0; i < 100 && exporter.getFinishedLogRecords().length < 3; i++) await settle();
      expect(exporter.getFinishedLogRecords().map((r) => r.attributes.a)).toEqual(["x", "y", "z"]);
      // A record still held when the SDK shuts down reaches it first.
      write(["w", 3]);
    } finally {
      await t.shutdown();
    }
    expect(exporter.getFinishedLogRecords().map((r) => r.attributes.a)).toEqual(["x", "y", "z", "w"]);
  });
});

class TestReader extends MetricReader {
  protected onForceFlush = async () => {};
  protected onShutdown = async () => {};
}

describe("FastHistogram", () => {
  it("publishes what was counted, as the SDK's histogram with the same buckets does", async () => {
    const boundaries = [0.1, 1, 10];
    const scope = { name: "test-scope-fast", version: "1.2.3" };
    const fast = new FastHistogram("test.fast.duration", { scope, description: "d", unit: "ms", boundaries });
    const a = fast.series({ kind: "file", code: 0 });
    expect(fast.series({ code: 0, kind: "file" })).toBe(a); // same set, any key order
    const b = fast.series({ kind: "registry", code: 0 });
    const values = [0, 0.1, 0.5, 1, 1.0001, 10, 11, 1e9];
    for (const v of values) a.record(v);
    a.record(-1); // not a duration
    a.record(Number.NaN);
    b.record(3);

    // The SDK's own histogram, fed the same values, through a reader that also has the producer.
    const reader = new TestReader({ metricProducers: [metricProducer] });
    const provider = new MeterProvider({ readers: [reader] });
    const sdkHist = provider.getMeter("sdk-scope").createHistogram("test.sdk.duration", {
      unit: "ms",
      advice: { explicitBucketBoundaries: boundaries },
    });
    for (const v of values) sdkHist.record(v, { kind: "file", code: 0 });
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).toEqual([]);
    const find = (name: string) =>
      resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name) as
        | HistogramMetricData
        | undefined;
    const mine = find("test.fast.duration")!;
    const theirs = find("test.sdk.duration")!;
    expect(mine.dataPointType).toBe(DataPointType.HISTOGRAM);
    expect(mine.aggregationTemporality).toBe(AggregationTemporality.CUMULATIVE);
    expect(mine.descriptor).toMatchObject({ description: "d", unit: "ms" });
    const pa = mine.dataPoints.find((p) => p.attributes.kind === "file")!;
    expect(pa.value).toEqual(theirs.dataPoints[0]!.value);
    expect(pa.value.buckets.counts).toEqual([2, 2, 2, 2]);
    expect(pa.value).toMatchObject({ count: 8, min: 0, max: 1e9 });
    const pb = mine.dataPoints.find((p) => p.attributes.kind === "registry")!;
    expect(pb.value).toMatchObject({ count: 1, sum: 3, buckets: { counts: [0, 0, 1, 0] } });
    const sm = resourceMetrics.scopeMetrics.find((s) => s.metrics.includes(mine))!;
    expect(sm.scope).toEqual(scope);
    expect(collectFastMetrics().some((s) => s.scope.name === scope.name)).toBe(true);
    await provider.shutdown();
  });
});

describe("root pre-sampling", () => {
  it("follows OTEL_TRACES_SAMPLER", () => {
    expect(samplerFor("parentbased_traceidratio", "0.01").ratio).toBe(0.01);
    expect(samplerFor("parentbased_traceidratio", "").ratio).toBe(1);
    expect(samplerFor("parentbased_traceidratio", "7").ratio).toBe(1);
    expect(samplerFor("parentbased_always_off", undefined)).toEqual({
      sampler: undefined,
      ratio: 0,
      parentBased: true,
    });
    expect(samplerFor("always_on", undefined).ratio).toBeUndefined();
    expect(samplerFor("traceidratio", "0.5").ratio).toBeUndefined(); // the SDK decides
  });

  it("samples roots at the ratio, and the SDK sampler keeps those", () => {
    const saved = rootSampling();
    try {
      const { sampler, ratio } = samplerFor("parentbased_traceidratio", "0.25");
      setRootSampling(ratio);
      let n = 0;
      for (let i = 0; i < 20000; i++) {
        const ctx = rootSpanContext();
        if (!ctx) continue;
        n++;
        // A root the pre-sampler kept is sampled by the SDK whatever its trace id.
        expect(sampler!.shouldSample(ctx, "ffffffffffffffffffffffffffffffff", "x", 0, {}, []).decision).toBe(
          2,
        );
      }
      expect(n / 20000).toBeGreaterThan(0.22);
      expect(n / 20000).toBeLessThan(0.28);
      setRootSampling(0);
      expect(rootSpanContext()).toBeUndefined();
    } finally {
      setRootSampling(saved);
    }
  });

  it("counts down to the next sampled root as a draw per root would (geometric gaps)", () => {
    for (const r of [0, -1, Number.NaN]) expect(rootsUntilSampled(r)).toBe(Number.POSITIVE_INFINITY);
    expect(rootsUntilSampled(1, 0.999)).toBe(1);
    // At 1/2: the first root for u in [0, 1/2), the second in [1/2, 3/4), the third in [3/4, 7/8).
    expect(rootsUntilSampled(0.5, 0)).toBe(1);
    expect(rootsUntilSampled(0.5, 0.49)).toBe(1);
    expect(rootsUntilSampled(0.5, 0.5)).toBe(2);
    expect(rootsUntilSampled(0.5, 0.76)).toBe(3);
    // At the default 1 %: mean gap 100, and 1 - 0.99^100 (0.634) of the gaps at most 100.
    const n = 20000;
    let sum = 0;
    let within100 = 0;
    let odd = 0;
    for (let i = 0; i < n; i++) {
      const g = rootsUntilSampled(0.01);
      if (!Number.isInteger(g) || g < 1) odd++;
      sum += g;
      if (g <= 100) within100++;
    }
    expect(odd).toBe(0);
    expect(sum / n).toBeGreaterThan(96);
    expect(sum / n).toBeLessThan(104);
    expect(within100 / n).toBeGreaterThan(0.614);
    expect(within100 / n).toBeLessThan(0.654);
  });

  it("tells a recording span from NOT_SAMPLED without asking NOT_SAMPLED", () => {
    expect(recording(undefined)).toBe(false);
    expect(recording(NOT_SAMPLED)).toBe(false);
    let asked = 0;
    const span = (on: boolean) =>
      ({
        isRecording: () => {
          asked++;
          return on;
        },
      }) as unknown as Span;
    expect(recording(span(true))).toBe(true);
    expect(recording(span(false))).toBe(false);
    expect(asked).toBe(2);
  });
});

describe("trace budget (the default sampler's cap)", () => {
  it("allows a burst of perSecond traces, then perSecond a second, never more than a burst ahead", () => {
    const b = new TraceBudget(10, 0);
    const taken = (from: number, to: number, step: number) => {
      let n = 0;
      for (let t = from; t < to; t += step) if (b.take(t)) n++;
      return n;
    };
    expect(taken(0, 1, 0.001)).toBe(10); // the burst, within the first millisecond
    expect(b.take(50)).toBe(false); // half a trace earned
    expect(b.take(101)).toBe(true); // one earned 100 ms after the burst
    const steady = taken(102, 2102, 1); // 10 a second: 20 in 2 s (19 if rounding leaves one short)
    expect(steady).toBeGreaterThanOrEqual(19);
    expect(steady).toBeLessThanOrEqual(20);
    expect(taken(60_000, 60_001, 0.001)).toBe(10); // a minute idle earns one burst, not 580
    expect(b.take(59_000)).toBe(false); // a clock that goes back earns nothing
    expect(b.take(60_050)).toBe(false); // nor later: 49 ms since the burst is half a trace
    expect(b.take(60_102)).toBe(true);
  });

  it("caps the roots rootSpanContext samples, and the SDK sampler's own roots too", () => {
    const saved = rootSampling();
    try {
      const { sampler, ratio } = samplerFor("parentbased_traceidratio", "1");
      setRootSampling(ratio, 5);
      expect(rootTraceBudget()).toBe(5);
      let n = 0;
      for (let i = 0; i < 1000; i++) if (rootSpanContext()) n++;
      expect(n).toBeGreaterThanOrEqual(5);
      expect(n).toBeLessThanOrEqual(6); // the burst, and at most one earned while the loop ran
      // A root the SDK samples itself (not through rootSpanContext) is held to the same budget.
      const id = "ffffffffffffffffffffffffffffffff";
      expect(sampler!.shouldSample(trace.deleteSpan(ROOT_CONTEXT), id, "x", 0, {}, []).decision).toBe(0);
      setRootSampling(ratio);
      expect(rootTraceBudget()).toBeUndefined();
      for (let i = 0; i < 100; i++) expect(rootSpanContext()).toBeDefined();
    } finally {
      setRootSampling(saved);
    }
  });
});

describe("default sampler", () => {
  it("is parentbased_traceidratio at 0.01 (an ARG alone sets its ratio) with a cap; a sampler named has none", async () => {
    // [ratio, cap on new traces a second]
    const budgetWith = async (env: Record<string, string>) => {
      const t = await startSdk({
        service: "agentsh-sampler-test",
        version: "0",
        defaultPrometheusPort: 0,
        env: { OTEL_METRICS_EXPORTER: "none", OTEL_TRACES_EXPORTER: "console", ...env },
      });
      try {
        return [rootSampling(), rootTraceBudget()];
      } finally {
        await t.shutdown();
      }
    };
    expect(await budgetWith({})).toEqual([0.01, DEFAULT_TRACES_PER_SECOND]);
    expect(await budgetWith({ OTEL_TRACES_SAMPLER_ARG: "0.5" })).toEqual([0.5, DEFAULT_TRACES_PER_SECOND]);
    expect(await budgetWith({ OTEL_TRACES_SAMPLER: "parentbased_traceidratio" })).toEqual([1, undefined]);
    expect(
      await budgetWith({ OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.01" }),
    ).toEqual([0.01, undefined]);
    expect(await budgetWith({ OTEL_TRACES_SAMPLER: "parentbased_always_on" })).toEqual([1, undefined]);
    expect(await budgetWith({ OTEL_TRACES_EXPORTER: "none" })).toEqual([0, undefined]);
  });

  it("providersEpoch changes when the SDK registers its providers and when it removes them", async () => {
    const e0 = providersEpoch();
    const t = await startSdk({
      service: "agentsh-epoch-test",
      version: "0",
      defaultPrometheusPort: 0,
      env: { OTEL_METRICS_EXPORTER: "none" },
    });
    const e1 = providersEpoch();
    expect(e1).not.toBe(e0);
    await t.shutdown();
    expect(providersEpoch()).not.toBe(e1);
  });
});

describe("span export", () => {
  /** Starts the SDK exporting traces over OTLP/HTTP to a local receiver, ends `spans` spans, flushes,
   * and returns how many export requests the receiver got. */
  async function exportRequests(spans: number, env: Record<string, string> = {}): Promise<number> {
    const receiver = await otlpReceiver();
    const t = await startSdk({
      service: "agentsh-export-test",
      version: "0",
      defaultPrometheusPort: 0,
      env: {
        OTEL_METRICS_EXPORTER: "none",
        OTEL_TRACES_EXPORTER: "otlp",
        OTEL_TRACES_SAMPLER: "parentbased_always_on",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        ...env,
      },
    });
    try {
      const tracer = trace.getTracer("export-test");
      for (let i = 0; i < spans; i++) tracer.startSpan(`s${i}`).end();
      await t.flush();
      return receiver.requests("/v1/traces");
    } finally {
      await t.shutdown();
      receiver.close();
    }
  }

  it("sends spans in batches of 512 over http/protobuf, unless OTEL_BSP_MAX_EXPORT_BATCH_SIZE says otherwise", async () => {
    expect(await exportRequests(1100)).toBe(3); // 512 + 512 + 76
    expect(await exportRequests(200, { OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "100" })).toBe(2);
  });

  it("sends spans in batches of 64 through the SDK's exporters (http/json)", async () => {
    const json = { OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" };
    expect(await exportRequests(200, json)).toBe(4); // 64 + 64 + 64 + 8
    expect(await exportRequests(200, { ...json, OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "100" })).toBe(2);
  });
});

describe("isoTime", () => {
  it("is Date#toISOString", () => {
    for (const ms of [0, 999, 1000, 1_795_337_284_364, 1_795_337_284_000, 1_795_337_284_999, Date.now()])
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
  });
});
