// The OpenTelemetry Node SDK for one service, configured by the standard OTEL_* variables only, with
// this project's defaults for what is unset:
//   OTEL_METRICS_EXPORTER=prometheus  (prometheus | otlp | console | none, a comma list)
//   OTEL_EXPORTER_PROMETHEUS_HOST=127.0.0.1, OTEL_EXPORTER_PROMETHEUS_PORT=<the service's port>
//   OTEL_TRACES_EXPORTER=none, OTEL_LOGS_EXPORTER=none  (otlp | console; OTEL_EXPORTER_OTLP_* apply;
//     with otlp alone over http/protobuf, the default protocol, spans as they end and the
//     fixed-shape log records within 100 ms, in batches, are encoded outside the JavaScript heap
//     and sent by the SDK's OTLP transport: otlp-direct.ts)
//   OTEL_TRACES_SAMPLER unset: parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG=0.01 (its ratio;
//     an ARG set alone applies to it), and at most DEFAULT_TRACES_PER_SECOND (10) new traces a second
//     per process: one decision in a hundred is traced, and no more than 10 a second however busy the
//     host. Traced decisions cost the services far more than their own work (broker/bench/
//     otel-bench.ts: at saturation, 1 % traced made about 2.6 % fewer decisions than 0.045 %, the
//     cap's rate there), so without the cap what tracing costs a host, and the volume a fleet sends
//     its collector, would grow with the load. A sampler named in OTEL_TRACES_SAMPLER is the
//     specification's, uncapped: parentbased_traceidratio traces exactly the ratio,
//     parentbased_always_on every decision.
//   OTEL_BSP_MAX_EXPORT_BATCH_SIZE=64 through the SDK's exporters (the SDK's default is 512): they
//     turn an export's spans into OTLP on the event loop in one go, and 512 of them held a busy
//     broker's decisions for over 10 ms
//     (with every decision traced at 3000/s: end-to-end p99 13.2 and 13.6 ms, against 4.9 and 5.4
//     with 64, and 2.6-3.0 without traces). The price: with every decision traced at saturation,
//     64 (or 128) made about 17 % fewer decisions than 512, side by side; at 1 % it is negligible.
//     With OTLP over http/protobuf alone (otlp-direct.ts) a span is encoded as it ends and an export
//     only sends bytes, so the SDK's 512 stands: an export is an HTTP request that costs the decision
//     path more than its size (broker/bench/otel-bench.ts), and 512 made about 0.6 % more decisions
//     than 64 with every signal on (side by side, four round pairs).
// OTEL_SDK_DISABLED=true starts nothing. The hot code uses the OpenTelemetry API only, so without a
// started SDK every instrument and span is a no-op.
// Values are read as the specification says (sdk-env.test.ts): trimmed, blank ones unset, names in any
// case; "none" in an exporter list means none; an unknown sampler, a port that is not one, or an
// export interval or timeout that is not positive is warned about (a JSON line on stderr) and the
// default used. OTEL_LOG_LEVEL sets the diagnostic logger's level (NodeSDK does it).
//
// No asynchronous context manager is registered: on Node 20 AsyncLocalStorage turns on promise hooks
// for the whole process, which costs more than all of this project's instrumentation. Trace context
// is passed explicitly instead (decision -> relay -> gRPC -> server).
//
// Shared by the broker and the policy server (package @agentsh/telemetry).
import { hostname } from "node:os";
import {
  type Context,
  type ContextManager,
  context,
  type Meter,
  type MeterProvider,
  metrics,
  propagation,
  ROOT_CONTEXT,
  trace,
} from "@opentelemetry/api";
import { logs } from "@opentelemetry/api-logs";
import { getNumberFromEnv } from "@opentelemetry/core";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import {
  type DetectedResourceAttributes,
  defaultResource,
  detectResources,
  envDetector,
  hostDetector,
  processDetector,
  type ResourceDetector,
} from "@opentelemetry/resources";
import type { LogRecordProcessor } from "@opentelemetry/sdk-logs";
import {
  ConsoleMetricExporter,
  type IMetricReader,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
  type ViewOptions,
} from "@opentelemetry/sdk-metrics";
import { NodeSDK } from "@opentelemetry/sdk-node";
// The SDK's own env parsing for OTLP metric exporters (not re-exported from its index).
import {
  getBatchLogRecordProcessorConfigFromEnv,
  getLoggerProviderConfigFromEnv,
  getOtlpMetricExporterFromEnv,
  getSpanProcessorsFromEnv,
} from "@opentelemetry/sdk-node/build/src/utils.js";
import type { SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { flushLightSpans, setLightPipeline } from "./light-trace.js";
import { metricProducer } from "./metrics.js";
import { OtlpRecordSink, OtlpSpanExporter } from "./otlp-direct.js";
import { samplerFor, setRootSampling } from "./trace.js";

export interface TelemetryOptions {
  /** service.name, unless OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) says otherwise. */
  service: string;
  /** service.version. */
  version: string;
  /** Port of the default Prometheus endpoint; OTEL_EXPORTER_PROMETHEUS_PORT wins. */
  defaultPrometheusPort: number;
  /** More resource attributes (host.name, agentsh.policy.version, ...); OTEL_RESOURCE_ATTRIBUTES wins. */
  attributes?: Record<string, string>;
  /** OTEL_* values for this SDK only, laid over process.env while it is built (tests, benchmarks). */
  env?: Record<string, string>;
  /** More span processors (tests: an in-memory exporter). A tracer provider is set up with them. */
  spanProcessors?: SpanProcessor[];
  /** More log record processors (tests: an in-memory exporter); they replace OTEL_LOGS_EXPORTER. */
  logRecordProcessors?: LogRecordProcessor[];
  /** Metric views (histogram buckets are set on the instruments themselves). */
  views?: ViewOptions[];
}

export interface Telemetry {
  service: string;
  /** Where Prometheus can scrape this process, when OTEL_METRICS_EXPORTER includes prometheus. */
  scrapeUrl: string | undefined;
  metricsExporters: string[];
  /** OTEL_LOGS_EXPORTER's exporters ([] for none): loggers also emit OpenTelemetry log records. */
  logsExporters: string[];
  /** Collects and exports pending metrics, spans and logs (not needed for Prometheus). */
  flush(): Promise<void>;
  /** Stops exporting and unregisters the SDK from the API (instruments become no-ops again). */
  shutdown(): Promise<void>;
}

const DEFAULTS: Record<string, string> = {
  OTEL_METRICS_EXPORTER: "prometheus",
  OTEL_TRACES_EXPORTER: "none",
  OTEL_LOGS_EXPORTER: "none",
  OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
};

/** Resource attributes that become labels of every Prometheus series (host and replica selection). */
export const CONSTANT_LABELS = /^(service\.name|service\.instance\.id|host\.name)$/;

function list(v: string | undefined): string[] {
  return (v ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}

/** Runs `fn` with `overlay` laid over process.env (the SDK reads process.env while it is built). */
function withEnv<T>(overlay: Record<string, string>, fn: () => T): T {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(overlay)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

let active: Telemetry | undefined;
let records: OtlpRecordSink | undefined;

/** Where fixed-shape log records go as OTLP bytes (otlp-direct.ts), when the started SDK has one. */
export function recordSink(): OtlpRecordSink | undefined {
  return records;
}

/** Work that must reach the SDK before it flushes or shuts down (log.ts: records held for a batch). */
const beforeFlush = new Set<() => void>();

/** Registers `fn` to run before every flush and shutdown of the started SDK. */
export function onBeforeFlush(fn: () => void): void {
  beforeFlush.add(fn);
}

function runBeforeFlush(): void {
  flushLightSpans();
  for (const fn of beforeFlush) fn();
}

/** The telemetry started in this process, if any. */
export function activeTelemetry(): Telemetry | undefined {
  return active;
}

let epoch = 0;
/**
 * A number that changes whenever startSdk or a shutdown registers or removes the global providers.
 * Code that binds instruments to the global MeterProvider compares it with the number it bound at
 * (a module variable), rather than asking the API for the provider on every decision: the API's
 * lookup checks version compatibility each time, a cost of every decision with the SDK on.
 */
export function providersEpoch(): number {
  return epoch;
}

/**
 * The instruments `create` makes on a meter of scope (name, version): first on the API's meter
 * (`observe` false: observable instruments are left for a real provider), then again on the global
 * MeterProvider's each time it changes, looked up only when providersEpoch() has moved.
 */
export function meterBinding<T>(
  name: string,
  version: string,
  create: (meter: Meter, observe: boolean) => T,
): () => T {
  let boundTo: MeterProvider | undefined;
  let boundEpoch = -1;
  let inst = create(metrics.getMeter(name, version), false);
  return () => {
    if (epoch !== boundEpoch) {
      boundEpoch = epoch;
      const p = metrics.getMeterProvider();
      if (p !== boundTo) {
        boundTo = p;
        inst = create(p.getMeter(name, version), true);
      }
    }
    return inst;
  };
}

/**
 * Starts the SDK and registers it with the OpenTelemetry API. One per process: a second call
 * returns the first (shut it down first to start another).
 */
export async function startSdk(opts: TelemetryOptions): Promise<Telemetry> {
  if (active) return active;
  /** A variable as the specification reads it: trimmed, and unset when blank. */
  const setting = (k: string): string | undefined => {
    const v = (opts.env?.[k] ?? process.env[k])?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  // `env` is laid over process.env while the SDK is built: our defaults for what is unset, and the
  // values normalised where the SDK would read them differently (it compares exporter names and the
  // sampler's name as written, where the specification makes them case-insensitive).
  const env: Record<string, string> = { ...opts.env };
  for (const [k, v] of Object.entries(DEFAULTS)) if (setting(k) === undefined) env[k] = v;
  for (const k of ["OTEL_TRACES_EXPORTER", "OTEL_LOGS_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_PROPAGATORS"])
    if (setting(k) !== undefined) env[k] = list(setting(k)).join(",");
  const sampler = traceSampler(setting("OTEL_TRACES_SAMPLER"), setting("OTEL_TRACES_SAMPLER_ARG"));
  env.OTEL_TRACES_SAMPLER = sampler.name;
  if (sampler.arg !== undefined) env.OTEL_TRACES_SAMPLER_ARG = sampler.arg;
  const get = (k: string): string | undefined => env[k] ?? process.env[k];
  if (setting("OTEL_SDK_DISABLED")?.toLowerCase() === "true") {
    const none = async () => {};
    return {
      service: opts.service,
      scrapeUrl: undefined,
      metricsExporters: [],
      logsExporters: [],
      flush: none,
      shutdown: none,
    };
  }
  // "none" among the exporters means none (as the SDK reads OTEL_TRACES_EXPORTER and OTEL_LOGS_EXPORTER).
  const chosen = (k: string): string[] => {
    const l = list(get(k));
    return l.includes("none") ? [] : l;
  };
  const exporters = chosen("OTEL_METRICS_EXPORTER");
  const promHost = setting("OTEL_EXPORTER_PROMETHEUS_HOST") ?? "127.0.0.1";
  const promPort = portSetting(setting("OTEL_EXPORTER_PROMETHEUS_PORT"), opts.defaultPrometheusPort);
  let prometheus: PrometheusExporter | undefined;
  const mine: DetectedResourceAttributes = {
    "service.name": opts.service,
    "service.version": opts.version,
    "service.instance.id": `${opts.attributes?.["host.name"] ?? hostname()}:${exporters.includes("prometheus") ? promPort : process.pid}`,
    ...opts.attributes,
  };
  const ownDetector: ResourceDetector = { detect: () => ({ attributes: mine }) };

  const sampling = samplerFor(sampler.name, sampler.arg);
  // The resource and the span processors are built here, as the SDK would build them, so that the
  // light spans (light-trace.ts) share them with the SDK's tracer provider.
  // Later detectors win: the environment over ours over the machine's.
  const resource = withEnv(env, () =>
    defaultResource().merge(
      detectResources({ detectors: [processDetector, hostDetector, ownDetector, envDetector] }),
    ),
  );
  // Given span processors replace OTEL_TRACES_EXPORTER (tests); tracing is on when there are any.
  // OTLP/HTTP protobuf alone: spans are encoded as they end (otlp-direct.ts); else the SDK's processors.
  const tracesList = chosen("OTEL_TRACES_EXPORTER");
  const directTraces = !opts.spanProcessors?.length && directOtlp(tracesList, "TRACES", get);
  const directLogs =
    !opts.logRecordProcessors?.length && directOtlp(chosen("OTEL_LOGS_EXPORTER"), "LOGS", get);
  // The direct encoders write the resource once, so its asynchronous attributes must have settled.
  if (directTraces || directLogs) await resource.waitForAsyncAttributes?.();
  let spanProcessors: SpanProcessor[];
  if (opts.spanProcessors?.length) spanProcessors = opts.spanProcessors;
  else if (directTraces) {
    spanProcessors = [
      withEnv(
        env,
        () =>
          new OtlpSpanExporter(resource, {
            scheduleDelayMillis: getNumberFromEnv("OTEL_BSP_SCHEDULE_DELAY"),
            maxExportBatchSize: getNumberFromEnv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
            maxQueueSize: getNumberFromEnv("OTEL_BSP_MAX_QUEUE_SIZE"),
          }),
      ),
    ];
  } else {
    if (setting("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") === undefined) env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE = "64";
    spanProcessors = tracesList.length > 0 ? withEnv(env, () => getSpanProcessorsFromEnv(undefined)) : [];
  }
  const tracing = spanProcessors.length > 0;

  const sdk = withEnv(env, () => {
    const readers: IMetricReader[] = [];
    for (const e of exporters) {
      if (e === "prometheus") {
        prometheus = new PrometheusExporter({
          host: promHost,
          port: promPort,
          preventServerStart: true,
          withResourceConstantLabels: CONSTANT_LABELS,
          metricProducers: [metricProducer],
        });
        readers.push(prometheus);
      } else if (e === "otlp") {
        readers.push(periodicReader(getOtlpMetricExporterFromEnv(), get));
      } else if (e === "console") {
        readers.push(periodicReader(new ConsoleMetricExporter(), get));
      } else {
        warn(`OTEL_METRICS_EXPORTER: unsupported "${e}" (prometheus, otlp, console, none)`);
      }
    }
    const s = new NodeSDK({
      resource,
      autoDetectResources: false,
      metricReaders: readers,
      views: opts.views ?? [],
      contextManager: new SyncContextManager(),
      ...(sampling.sampler ? { sampler: sampling.sampler } : {}),
      spanProcessors,
      ...(opts.logRecordProcessors?.length ? { logRecordProcessors: opts.logRecordProcessors } : {}),
    });
    s.start();
    epoch++;
    return s;
  });
  // Fixed-shape records (log.ts recordWriter) straight to OTLP bytes when OTLP/HTTP protobuf is the
  // only logs exporter (otlp-direct.ts); the SDK's pipeline otherwise.
  let sink: OtlpRecordSink | undefined;
  if (directLogs) {
    sink = withEnv(env, () => {
      const batch = getBatchLogRecordProcessorConfigFromEnv();
      const limits = getLoggerProviderConfigFromEnv().logRecordLimits ?? {};
      return new OtlpRecordSink(resource, {
        ...batch,
        attributeCountLimit: limits.attributeCountLimit,
        attributeValueLengthLimit: limits.attributeValueLengthLimit,
      });
    });
  }
  records = sink;
  setRootSampling(tracing ? sampling.ratio : 0, tracing ? sampler.perSecond : undefined);
  // Light spans on the decision path with a parent-based sampler; the W3C fast path when the
  // propagators are W3C trace context, with or without baggage (OTEL_PROPAGATORS, default
  // tracecontext,baggage). OTEL_LOG_LEVEL: NodeSDK has set the diagnostic logger at that level.
  const propagators = list(get("OTEL_PROPAGATORS"));
  setLightPipeline(
    tracing && sampling.parentBased && sampling.ratio !== undefined
      ? { processors: spanProcessors, resource, ratio: sampling.ratio }
      : undefined,
    propagators.length === 0 ||
      (propagators.includes("tracecontext") &&
        propagators.every((p) => p === "tracecontext" || p === "baggage")),
  );
  // Telemetry never stops the service: a taken port is reported and the endpoint left out.
  if (prometheus) {
    try {
      await prometheus.startServer();
    } catch (e) {
      process.stderr.write(
        `${JSON.stringify({ level: "warn", msg: `no Prometheus endpoint on ${promHost}:${promPort}: ${(e as Error).message}; set OTEL_EXPORTER_PROMETHEUS_PORT` })}\n`,
      );
      prometheus = undefined;
    }
  }
  const shownHost = promHost.includes(":") ? `[${promHost}]` : promHost;
  const t: Telemetry = {
    service: opts.service,
    scrapeUrl: prometheus ? `http://${shownHost}:${promPort}/metrics` : undefined,
    metricsExporters: exporters.filter((e) => e === "prometheus" || e === "otlp" || e === "console"),
    logsExporters: opts.logRecordProcessors?.length
      ? ["in-process"]
      : chosen("OTEL_LOGS_EXPORTER").filter((e) => e === "otlp" || e === "console"),
    flush: async () => {
      runBeforeFlush();
      const mp = metrics.getMeterProvider() as { forceFlush?: () => Promise<void> };
      const tp = trace.getTracerProvider() as { getDelegate?: () => { forceFlush?: () => Promise<void> } };
      const lp = logs.getLoggerProvider() as { forceFlush?: () => Promise<void> };
      await Promise.all([
        mp.forceFlush?.(),
        tp.getDelegate?.().forceFlush?.(),
        lp.forceFlush?.(),
        sink?.flush(),
      ]);
    },
    shutdown: async () => {
      runBeforeFlush();
      if (active === t) active = undefined;
      setRootSampling(0);
      setLightPipeline(undefined, false);
      if (records === sink) records = undefined;
      await Promise.all([sdk.shutdown().catch(() => {}), sink?.shutdown()]);
      metrics.disable();
      trace.disable();
      propagation.disable();
      logs.disable();
      context.disable();
      epoch++;
    },
  };
  active = t;
  return t;
}

/**
 * Whether a signal's exporters are OTLP over HTTP with protobuf alone (the protocol from
 * OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf, as the
 * SDK reads it): then otlp-direct.ts encodes that signal's items as they end.
 */
function directOtlp(
  exporters: string[],
  signal: "TRACES" | "LOGS",
  get: (k: string) => string | undefined,
): boolean {
  const protocol =
    get(`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`)?.trim() ||
    get("OTEL_EXPORTER_OTLP_PROTOCOL")?.trim() ||
    "http/protobuf";
  return (
    exporters.length > 0 && exporters.every((e) => e === "otlp") && protocol.toLowerCase() === "http/protobuf"
  );
}

/** The samplers the SDK builds from OTEL_TRACES_SAMPLER. */
const SAMPLERS = new Set([
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
]);

/** New traces a second (per process) that the default sampler starts at most. */
export const DEFAULT_TRACES_PER_SECOND = 10;

/**
 * OTEL_TRACES_SAMPLER and its argument as this project reads them: the name case-insensitive (as the
 * specification asks); unset, blank or unknown (with a warning), our default: a parent-based ratio
 * sampler whose ratio is the argument if one is given, else 0.01, that starts at most
 * DEFAULT_TRACES_PER_SECOND new traces a second (`perSecond`). A sampler named is the specification's,
 * without a cap.
 */
export function traceSampler(
  name: string | undefined,
  arg: string | undefined,
): { name: string; arg: string | undefined; perSecond?: number } {
  const n = name?.toLowerCase();
  if (n !== undefined && SAMPLERS.has(n)) return { name: n, arg };
  if (n !== undefined)
    warn(
      `OTEL_TRACES_SAMPLER: unsupported "${name}" (${[...SAMPLERS].join(", ")}); using parentbased_traceidratio`,
    );
  return { name: "parentbased_traceidratio", arg: arg ?? "0.01", perSecond: DEFAULT_TRACES_PER_SECOND };
}

/** OTEL_EXPORTER_PROMETHEUS_PORT: a port from 1 to 65535, else (with a warning) `dflt`. */
function portSetting(text: string | undefined, dflt: number): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (Number.isInteger(n) && n >= 1 && n <= 65535) return n;
  warn(`OTEL_EXPORTER_PROMETHEUS_PORT: "${text}" is not a port (1-65535); using ${dflt}`);
  return dflt;
}

/** A configuration warning, as a JSON line on stderr (the SDK's diagnostic logger is off by default). */
function warn(msg: string): void {
  process.stderr.write(`${JSON.stringify({ level: "warn", msg })}\n`);
}

/**
 * A PeriodicExportingMetricReader as the SDK would build it from OTEL_METRIC_EXPORT_INTERVAL and
 * OTEL_METRIC_EXPORT_TIMEOUT, that also collects the hot-path histograms (metrics.ts).
 */
function periodicReader(exporter: PushMetricExporter, get: (k: string) => string | undefined): IMetricReader {
  const num = (k: string): number | undefined => {
    const v = Number(get(k));
    // As the SDK: a value that is not a positive number is ignored (0 would stop the reader).
    return get(k) && Number.isFinite(v) && v > 0 ? v : undefined;
  };
  const exportIntervalMillis = num("OTEL_METRIC_EXPORT_INTERVAL") ?? 60000;
  const exportTimeoutMillis = Math.min(num("OTEL_METRIC_EXPORT_TIMEOUT") ?? 30000, exportIntervalMillis);
  return new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis,
    exportTimeoutMillis,
    metricProducers: [metricProducer],
  });
}

/**
 * NodeSDK registers an AsyncLocalStorage context manager unless given one. This one only carries a
 * context through synchronous code run by `context.with` (enough for log lines written inside it).
 */
class SyncContextManager implements ContextManager {
  private stack: Context[] = [];
  active(): Context {
    return this.stack[this.stack.length - 1] ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    this.stack.push(ctx);
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.stack.pop();
    }
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.stack = [];
    return this;
  }
}
