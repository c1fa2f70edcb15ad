// The spans of the decision path, without the SDK's span machinery.
//
// Why: a decision is traced one time in a hundred, so the code of a traced decision runs cold. In a
// running broker or policy server the SDK's startSpan, end and W3C propagation then cost 50-70 µs
// per span (V8 profiles of both at 4000 decisions/s, 1 % traced) against under 1 µs in a hot loop:
// every function and object they touch is out of the caches. That cold footprint, not the work, was
// most of what tracing cost (broker/bench/otel-bench.ts). These spans touch a few fields instead:
//   - LightTracer.startSpan: the parent's context, ids from the SDK's generator, one object;
//   - LightSpan.end: the end time, then the span waits in a list;
//   - every SPAN_BATCH spans, or FLUSH_MS after the first waiting one, the list is handed to the
//     SDK's span processors (LightSpan is a ReadableSpan), so batching, OTEL_BSP_* limits and the
//     exporters chosen by OTEL_TRACES_EXPORTER are the SDK's own, run in one warm loop (with OTLP
//     over http/protobuf alone, the processor is otlp-direct.ts's, which encodes them there).
// The processors' onStart is not called (the SDK's batch and simple processors do nothing there).
// Span limits (OTEL_SPAN_*_LIMIT) are not applied: these spans carry a handful of fixed attributes.
//
// Used only with a parent-based sampler, whose decisions are simple: a child follows its parent's
// sampled flag and a root is sampled with the configured ratio and cap (telemetry/trace.ts). Any other
// sampler keeps the SDK's tracer (tracerFor).
import {
  type Attributes,
  type AttributeValue,
  type Context,
  context as contextApi,
  type Exception,
  type HrTime,
  INVALID_SPAN_CONTEXT,
  isSpanContextValid,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  type SpanOptions,
  type SpanStatus,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapSetter,
  type TimeInput,
  TraceFlags,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import {
  hrTime,
  hrTimeDuration,
  isTracingSuppressed,
  parseTraceParent,
  TraceState,
  timeInputToHrTime,
} from "@opentelemetry/core";
import type { Resource } from "@opentelemetry/resources";
import {
  RandomIdGenerator,
  type ReadableSpan,
  type SpanProcessor,
  type TimedEvent,
} from "@opentelemetry/sdk-trace-base";
import { PRESAMPLED, sampleNewRoot } from "./trace.js";

/** Spans handed to the processors at once; and the longest a finished span waits, ms. */
export const SPAN_BATCH = 64;
export const FLUSH_MS = 200;

interface Pipeline {
  processors: readonly SpanProcessor[];
  resource: Resource;
  /** Probability that a root started without a presampled context is sampled. */
  ratio: number;
}

let pipeline: Pipeline | undefined;
let generation = 0;
let pending: LightSpan[] = [];
let timer: ReturnType<typeof setTimeout> | undefined;
/** W3C trace context is the only propagation configured (OTEL_PROPAGATORS): inject/extract directly. */
let w3cOnly = false;

/** sdk.ts: light spans on (into `p`'s processors) or off. */
export function setLightPipeline(p: Pipeline | undefined, w3c: boolean): void {
  flushLightSpans();
  pipeline = p;
  w3cOnly = w3c && p !== undefined;
  generation++;
}

/** Hands the finished spans waiting to the processors (sdk.ts calls it before a flush or shutdown). */
export function flushLightSpans(): void {
  if (timer !== undefined) {
    clearTimeout(timer);
    timer = undefined;
  }
  if (deferred.length > 0) {
    const recs = deferred;
    deferred = [];
    for (const r of recs) buildDeferred(r);
  }
  if (pending.length === 0) return;
  const batch = pending;
  pending = [];
  for (const s of batch) for (const p of s.processors) p.onEnd(s);
}

function finished(s: LightSpan): void {
  pending.push(s);
  waiting();
}

function waiting(): void {
  if (pending.length + deferred.length >= SPAN_BATCH) flushLightSpans();
  else if (timer === undefined) {
    timer = setTimeout(flushLightSpans, FLUSH_MS);
    timer.unref?.();
  }
}

// -- spans recorded on the hot path, built at the flush ----------------------------------------------
//
// Even a light span costs tens of microseconds when its code runs cold (measured in a running policy
// server at 4000 checks/s, 1 % traced: parsing the traceparent and starting the span took a median of
// 33 and 23 µs). A SERVER span that no code needs while the check runs is therefore only recorded
// (its remote parent's trace context as received, its times and attributes) and made at the flush,
// where the parsing and span code run for a whole batch at once.

interface Deferred {
  p: Pipeline;
  scope: Scope;
  name: string;
  kind: SpanKind;
  traceparent: string;
  tracestate: string | undefined;
  start: number;
  end: number;
  attributes: Attributes;
  status: SpanStatus | undefined;
}

let deferred: Deferred[] = [];

/** Light spans are on (deferRemoteChild can record spans). */
export function lightTracing(): boolean {
  return pipeline !== undefined && w3cOnly;
}

/**
 * Records a span that is a child of the remote parent in `traceparent` (W3C), started and ended at
 * the performance times `start` and `end`, to be made at the next flush if the parent is sampled (a
 * malformed traceparent makes none, as extracting it would). Only when lightTracing() is true.
 */
export function deferRemoteChild(
  scope: Scope,
  name: string,
  kind: SpanKind,
  traceparent: string,
  tracestate: string | undefined,
  start: number,
  end: number,
  attributes: Attributes,
  status?: SpanStatus,
): void {
  const p = pipeline;
  if (p === undefined) return;
  deferred.push({ p, scope, name, kind, traceparent, tracestate, start, end, attributes, status });
  waiting();
}

function buildDeferred(r: Deferred): void {
  const parsed = parseTraceParent(r.traceparent);
  if (parsed === null || (parsed.traceFlags & TraceFlags.SAMPLED) === 0) return;
  const parent: SpanContext = { ...parsed, isRemote: true };
  if (r.tracestate) parent.traceState = new TraceState(r.tracestate);
  const sc: SpanContext = {
    traceId: parent.traceId,
    spanId: ids.generateSpanId(),
    traceFlags: TraceFlags.SAMPLED,
  };
  if (parent.traceState !== undefined) sc.traceState = parent.traceState;
  const s = new LightSpan(r.p, r.scope, r.name, r.kind, sc, parent, r.attributes, undefined, r.start);
  if (r.status !== undefined) s.setStatus(r.status);
  s.end(r.end);
}

// -- ids and times -----------------------------------------------------------------------------------

// The SDK's own id generator (the one NodeSDK uses by default) and clock.
const ids = new RandomIdGenerator();

/** A TimeInput as the SDK reads it: a number not after performance.now() is a performance time. */
function hrOf(t: TimeInput | undefined): HrTime {
  return hrAt(at(t));
}

/**
 * A span's time as kept on the decision path: a performance.now() reading, or an HrTime for a time
 * given as a date or epoch. The HrTime of a reading (time origin plus reading, in two numbers) is
 * made when the span is read, in a processor's batch, not on the path (where, run for one decision
 * in a hundred, the SDK's clock code ran cold).
 */
type At = number | HrTime;

function at(t: TimeInput | undefined): At {
  if (t === undefined) return performance.now();
  if (typeof t === "number" && t <= performance.now()) return t;
  return timeInputToHrTime(t);
}

function hrAt(t: At): HrTime {
  return typeof t === "number" ? hrTime(t) : t;
}

// -- spans -------------------------------------------------------------------------------------------

export interface Scope {
  name: string;
  version?: string;
}

/** A recording span that is also the SDK's ReadableSpan. */
export class LightSpan implements Span, ReadableSpan {
  name: string;
  readonly kind: SpanKind;
  readonly parentSpanContext: SpanContext | undefined;
  private readonly t0: At;
  private t1: At | undefined;
  status: SpanStatus = { code: SpanStatusCode.UNSET };
  readonly attributes: Attributes;
  readonly links: Link[];
  readonly events: TimedEvent[] = [];
  ended = false;
  readonly resource: Resource;
  readonly instrumentationScope: Scope;
  readonly droppedAttributesCount = 0;
  readonly droppedEventsCount = 0;
  readonly droppedLinksCount = 0;
  /** The processors of the pipeline it was started in (a flush after a pipeline change). */
  readonly processors: readonly SpanProcessor[];
  private readonly ctx: SpanContext;

  constructor(
    p: Pipeline,
    scope: Scope,
    name: string,
    kind: SpanKind,
    ctx: SpanContext,
    parent: SpanContext | undefined,
    attributes: Attributes | undefined,
    links: Link[] | undefined,
    startTime: TimeInput | undefined,
  ) {
    this.name = name;
    this.kind = kind;
    this.ctx = ctx;
    this.parentSpanContext = parent;
    this.attributes = {};
    if (attributes !== undefined) this.setAttributes(attributes);
    this.links = links === undefined ? [] : links.slice();
    this.t0 = at(startTime);
    this.resource = p.resource;
    this.instrumentationScope = scope;
    this.processors = p.processors;
  }

  spanContext(): SpanContext {
    return this.ctx;
  }

  get startTime(): HrTime {
    return hrAt(this.t0);
  }

  /** [0, 0] until it ends; never before the start (as the SDK: a negative duration becomes 0). */
  get endTime(): HrTime {
    if (this.t1 === undefined) return [0, 0];
    const start = this.startTime;
    const end = hrAt(this.t1);
    return hrTimeDuration(start, end)[0] < 0 ? start : end;
  }

  get duration(): HrTime {
    return this.t1 === undefined ? [0, 0] : hrTimeDuration(this.startTime, this.endTime);
  }

  setAttribute(key: string, value: AttributeValue | undefined): this {
    // As the SDK: an empty key or a null/undefined value is ignored.
    if (!this.ended && key.length > 0 && value !== undefined && value !== null) this.attributes[key] = value;
    return this;
  }

  setAttributes(attributes: Attributes): this {
    for (const k in attributes) this.setAttribute(k, attributes[k]);
    return this;
  }

  addEvent(name: string, attributesOrTime?: Attributes | TimeInput, time?: TimeInput): this {
    if (this.ended) return this;
    let attributes: Attributes | undefined;
    if (isTimeInput(attributesOrTime)) time = attributesOrTime;
    else attributes = attributesOrTime;
    this.events.push({
      name,
      attributes: attributes ?? {},
      time: hrOf(time),
      droppedAttributesCount: 0,
    });
    return this;
  }

  addLink(link: Link): this {
    if (!this.ended) this.links.push(link);
    return this;
  }

  addLinks(links: Link[]): this {
    for (const l of links) this.addLink(l);
    return this;
  }

  setStatus(status: SpanStatus): this {
    // As the SDK: UNSET changes nothing, OK is final.
    if (this.ended || status.code === SpanStatusCode.UNSET || this.status.code === SpanStatusCode.OK)
      return this;
    this.status =
      status.code === SpanStatusCode.ERROR && typeof status.message === "string"
        ? { code: status.code, message: status.message }
        : { code: status.code };
    return this;
  }

  updateName(name: string): this {
    if (!this.ended) this.name = name;
    return this;
  }

  end(endTime?: TimeInput): void {
    if (this.ended) return;
    this.ended = true;
    this.t1 = at(endTime);
    finished(this);
  }

  isRecording(): boolean {
    return !this.ended;
  }

  recordException(exception: Exception, time?: TimeInput): void {
    const attributes: Attributes = {};
    if (typeof exception === "string") attributes["exception.message"] = exception;
    else if (exception) {
      if (exception.code !== undefined) attributes["exception.type"] = String(exception.code);
      else if (exception.name) attributes["exception.type"] = exception.name;
      if (exception.message) attributes["exception.message"] = exception.message;
      if (exception.stack) attributes["exception.stacktrace"] = exception.stack;
    }
    this.addEvent("exception", attributes, time);
  }
}

function isTimeInput(v: unknown): v is TimeInput {
  return typeof v === "number" || v instanceof Date || (Array.isArray(v) && v.length === 2);
}

/** A Tracer whose sampled spans are LightSpans (parent-based sampling, see the file comment). */
export class LightTracer implements Tracer {
  constructor(
    private readonly p: Pipeline,
    private readonly scope: Scope,
  ) {}

  startSpan(name: string, options: SpanOptions = {}, ctx: Context = contextApi.active()): Span {
    if (options.root) ctx = trace.deleteSpan(ctx);
    if (isTracingSuppressed(ctx)) return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    const parent = trace.getSpanContext(ctx);
    let traceId: string;
    let sampled: boolean;
    let valid: SpanContext | undefined;
    if (parent !== undefined && isSpanContextValid(parent)) {
      valid = parent;
      traceId = parent.traceId;
      sampled = (parent.traceFlags & TraceFlags.SAMPLED) !== 0;
    } else {
      traceId = ids.generateTraceId();
      sampled = ctx.getValue(PRESAMPLED) === true || sampleNewRoot(this.p.ratio);
    }
    const sc: SpanContext = {
      traceId,
      spanId: ids.generateSpanId(),
      traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    };
    if (valid?.traceState !== undefined) sc.traceState = valid.traceState;
    if (!sampled) return trace.wrapSpanContext(sc);
    return new LightSpan(
      this.p,
      this.scope,
      name,
      options.kind ?? SpanKind.INTERNAL,
      sc,
      valid,
      options.attributes,
      options.links,
      options.startTime,
    );
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(name: string, opts: SpanOptions, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    opts: SpanOptions,
    ctx: Context,
    fn: F,
  ): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    a?: SpanOptions | F,
    b?: Context | F,
    c?: F,
  ): ReturnType<F> {
    const fn = (c ?? (typeof b === "function" ? b : a)) as F;
    const opts = typeof a === "object" ? a : {};
    const ctx = typeof b === "object" ? b : contextApi.active();
    const span = this.startSpan(name, opts, ctx);
    return contextApi.with(trace.setSpan(ctx, span), () => fn(span)) as ReturnType<F>;
  }
}

/**
 * The tracer of `scope` for the decision path: light spans when they are on, else the registered
 * provider's (the SDK's, or the API's no-op). Cheap to call per decision.
 */
export function tracerFor(scope: Scope): () => Tracer {
  let seenGeneration = -1;
  let seenProvider: unknown;
  let t: Tracer = trace.getTracer(scope.name, scope.version);
  return () => {
    const p = pipeline;
    if (p !== undefined) {
      if (seenGeneration !== generation) {
        seenGeneration = generation;
        seenProvider = undefined;
        t = new LightTracer(p, scope);
      }
      return t;
    }
    const provider = trace.getTracerProvider();
    if (seenGeneration !== generation || provider !== seenProvider) {
      seenGeneration = generation;
      seenProvider = provider;
      t = provider.getTracer(scope.name, scope.version);
    }
    return t;
  };
}

// -- W3C trace context -------------------------------------------------------------------------------

/**
 * Puts `span`'s trace context into `carrier` with the configured propagators (only the W3C
 * traceparent/tracestate pair when that is all that is configured: no API round trip).
 */
export function injectTraceContext<C>(span: Span, carrier: C, setter: TextMapSetter<C>): void {
  if (!w3cOnly) {
    propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, setter);
    return;
  }
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return;
  const flags = sc.traceFlags & TraceFlags.SAMPLED ? "01" : "00";
  setter.set(carrier, "traceparent", `00-${sc.traceId}-${sc.spanId}-${flags}`);
  const ts = sc.traceState?.serialize();
  if (ts) setter.set(carrier, "tracestate", ts);
}

/** The context of the remote parent whose trace context `carrier` holds (ROOT_CONTEXT: none). */
export function extractTraceContext<C>(carrier: C, getter: TextMapGetter<C>): Context {
  if (!w3cOnly) return propagation.extract(ROOT_CONTEXT, carrier, getter);
  const tp = first(getter.get(carrier, "traceparent"));
  if (tp === undefined) return ROOT_CONTEXT;
  const parsed = parseTraceParent(tp);
  if (parsed === null) return ROOT_CONTEXT;
  const sc: SpanContext = { ...parsed, isRemote: true };
  const ts = getter.get(carrier, "tracestate");
  if (ts !== undefined && ts.length > 0)
    sc.traceState = new TraceState(Array.isArray(ts) ? ts.join(",") : ts);
  return trace.setSpanContext(ROOT_CONTEXT, sc);
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** A plain record as a carrier (a check's trace context fields, collected or read together). */
export const recordCarrier: TextMapGetter<Record<string, string>> & TextMapSetter<Record<string, string>> = {
  get: (c, k) => c[k],
  keys: (c) => Object.keys(c),
  set: (c, k, v) => {
    c[k] = v;
  },
};
