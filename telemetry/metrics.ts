// Histograms for the hot path, counted in preallocated arrays and published at collection time.
//
// A synchronous OpenTelemetry instrument sorts and hashes its attributes on every record() (about
// 1 us with four attributes, and garbage). Here the caller resolves its attribute set to a series once
// (`histogram.series(attrs)`, kept by the caller, typically in an array indexed by small integers) and
// then `series.record(v)` is a bucket search and four additions. At collection, every metric reader
// the SDK builds (Prometheus, OTLP, console; telemetry/sdk.ts) asks `metricProducer` for the data
// points, with the same descriptor (name, description, unit), bucket boundaries and cumulative
// semantics an SDK histogram with `advice.explicitBucketBoundaries` would report.
//
// Shared by the broker and the policy server (package @agentsh/telemetry).
import { type Attributes, type HrTime, ValueType } from "@opentelemetry/api";
import { millisToHrTime } from "@opentelemetry/core";
import {
  AggregationTemporality,
  type CollectionResult,
  DataPointType,
  type MetricData,
  type MetricProducer,
  type ScopeMetrics,
} from "@opentelemetry/sdk-metrics";

export interface HistogramOptions {
  /** Instrumentation scope: the meter's name and version (they label the Prometheus series). */
  scope: { name: string; version?: string };
  description: string;
  unit: string;
  /** Explicit bucket upper bounds (inclusive), ascending. */
  boundaries: readonly number[];
}

/** One attribute set of a FastHistogram: the counts since the process started. */
export class HistogramSeries {
  /** counts[i]: values <= boundaries[i] (and > boundaries[i-1]); the last one: above every bound. */
  readonly counts: Float64Array;
  count = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  readonly startTime: HrTime = millisToHrTime(Date.now());

  constructor(
    readonly attributes: Attributes,
    private readonly bounds: Float64Array,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  record(value: number): void {
    // NaN and negative values are not measurements of a duration (the SDK drops them too).
    if (!(value >= 0)) return;
    const b = this.bounds;
    // Binary search for the first bound >= value.
    let lo = 0;
    let hi = b.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (b[mid]! < value) lo = mid + 1;
      else hi = mid;
    }
    this.counts[lo]!++;
    this.count++;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }
}

const histograms: FastHistogram[] = [];

/** A histogram instrument whose series are resolved once and recorded into plain arrays. */
export class FastHistogram {
  private readonly bounds: Float64Array;
  private readonly bySet = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    readonly opts: HistogramOptions,
  ) {
    this.bounds = Float64Array.from(opts.boundaries);
    histograms.push(this);
  }

  /** The series of `attributes` (created on first use; callers keep it). */
  series(attributes: Attributes): HistogramSeries {
    const key = JSON.stringify(Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : 1)));
    let s = this.bySet.get(key);
    if (!s) {
      s = new HistogramSeries(Object.freeze({ ...attributes }), this.bounds);
      this.bySet.set(key, s);
    }
    return s;
  }

  /** The series recorded so far (tests). */
  allSeries(): HistogramSeries[] {
    return [...this.bySet.values()];
  }

  toMetricData(endTime: HrTime): MetricData {
    const boundaries = [...this.opts.boundaries];
    return {
      descriptor: {
        name: this.name,
        description: this.opts.description,
        unit: this.opts.unit,
        valueType: ValueType.DOUBLE,
      },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints: [...this.bySet.values()].map((s) => ({
        attributes: s.attributes,
        startTime: s.startTime,
        endTime,
        value: {
          buckets: { boundaries, counts: Array.from(s.counts) },
          count: s.count,
          sum: s.sum,
          ...(s.count > 0 ? { min: s.min, max: s.max } : {}),
        },
      })),
    };
  }
}

/** `m.get(k)`, or `make()` put there first: the steps of a lookup through nested maps. */
export function getOrAdd<K, V>(m: Map<K, V>, k: K, make: () => V): V {
  let v = m.get(k);
  if (v === undefined) {
    v = make();
    m.set(k, v);
  }
  return v;
}

const newMethods = () => new Map<string, HistogramSeries[]>();
const newCodes = (): HistogramSeries[] => [];

/**
 * The series of an rpc.client.duration / rpc.server.duration histogram by (rpc.service, rpc.method,
 * rpc.grpc.status_code), found through nested maps keyed by the values themselves: no attribute
 * object or key string is built per call.
 */
export function rpcSeriesLookup(
  h: FastHistogram,
): (service: string, method: string, code: number) => HistogramSeries {
  const byService = new Map<string, Map<string, HistogramSeries[]>>();
  return (service, method, code) => {
    const codes = getOrAdd(getOrAdd(byService, service, newMethods), method, newCodes);
    let s = codes[code];
    if (!s) {
      s = h.series({
        "rpc.system": "grpc",
        "rpc.service": service,
        "rpc.method": method,
        "rpc.grpc.status_code": code,
      });
      codes[code] = s;
    }
    return s;
  };
}

/** Every FastHistogram's data points, grouped by instrumentation scope. */
export function collectFastMetrics(): ScopeMetrics[] {
  const endTime = millisToHrTime(Date.now());
  const scopes = new Map<string, ScopeMetrics>();
  for (const h of histograms) {
    const { name, version } = h.opts.scope;
    const key = `${name}@${version ?? ""}`;
    let sm = scopes.get(key);
    if (!sm) {
      sm = { scope: { name, ...(version ? { version } : {}) }, metrics: [] };
      scopes.set(key, sm);
    }
    sm.metrics.push(h.toMetricData(endTime));
  }
  return [...scopes.values()];
}

/**
 * The MetricProducer given to every reader telemetry/sdk.ts builds. The reader merges its scope
 * metrics with the SDK's own, under the SDK's resource (the resource given here is not used).
 */
export const metricProducer: MetricProducer = {
  collect: async (): Promise<CollectionResult> => ({
    resourceMetrics: { resource: undefined as never, scopeMetrics: collectFastMetrics() },
    errors: [],
  }),
};
