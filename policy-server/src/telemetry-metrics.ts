// The policy server's metrics and traces, through the OpenTelemetry API only (no-ops until an SDK is
// registered; see telemetry/sdk.ts):
//   agentsh.policy.evaluations{kind,operation,decision,rule}, agentsh.policy.evaluation.duration{kind}
//   rpc.server.duration{rpc.system,rpc.service,rpc.method,rpc.grpc.status_code} (connect interceptor)
//   agentsh.policy.version.info{policy_version,policy_name,mode}, agentsh.policy.reloads{result}
// Spans: one SERVER span per traced check (unary: from the W3C trace context in the request headers,
// made by the interceptor; CheckStream: one per check, from its traceparent and tracestate),
// carrying the evaluation: the rule that decided, the decision, the policy version. A check without a
// trace context makes no span.

import type { CheckRequest } from "@agentsh/proto";
import {
  deferRemoteChild,
  extractTraceContext,
  FastHistogram,
  getOrAdd,
  type HistogramSeries,
  lightTracing,
  meterBinding,
  recordCarrier,
  rpcSeriesLookup,
  tracerFor,
} from "@agentsh/telemetry";
import {
  Code,
  ConnectError,
  createContextKey,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import {
  type Attributes,
  type Context,
  type Counter,
  type Meter,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
} from "@opentelemetry/api";
import type { PolicyEngine } from "./engine.js";
import type { CheckInput, Decision } from "./engine-types.js";
import type { PolicyStore, PolicyVersion } from "./server-store.js";

export const SCOPE = "agentsh-policy-server";
export const SCOPE_VERSION = "0.1.0";

/** Engine evaluation time, seconds (microseconds normally; canonicalisation dominates). */
export const EVALUATION_BUCKETS_S = [
  0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
];
/** rpc.server.duration, milliseconds (OpenTelemetry RPC conventions). */
export const RPC_BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

interface ServerInstruments {
  reloads: Counter;
}

// Histograms counted in arrays, published by the telemetry package's metric producer (a synchronous
// SDK histogram hashes its attributes on every record).
const SCOPE_INFO = { name: SCOPE, version: SCOPE_VERSION };
const evaluationDuration = new FastHistogram("agentsh.policy.evaluation.duration", {
  scope: SCOPE_INFO,
  description: "Policy engine evaluation time (canonicalisation and matching)",
  unit: "s",
  boundaries: EVALUATION_BUCKETS_S,
});
const rpcServerDuration = new FastHistogram("rpc.server.duration", {
  scope: SCOPE_INFO,
  description: "Duration of inbound RPCs (a stream's duration is the whole call)",
  unit: "ms",
  boundaries: RPC_BUCKETS_MS,
});
/** The histograms (tests). */
export const serverHistograms = { evaluationDuration, rpcServerDuration };

const stores = new Set<PolicyStore>();
const seenVersions = new WeakMap<PolicyStore, PolicyVersion[]>();
const instruments: () => ServerInstruments = meterBinding(SCOPE, SCOPE_VERSION, create);
/** The server's tracer (light spans when they are on: telemetry/light-trace.ts). */
const serverTracer: () => Tracer = tracerFor({ name: SCOPE, version: SCOPE_VERSION });

function create(meter: Meter, observe: boolean): ServerInstruments {
  const i: ServerInstruments = {
    reloads: meter.createCounter("agentsh.policy.reloads", {
      description: "Policy reloads that changed the version (success) or were refused (failure)",
      unit: "{reload}",
    }),
  };
  if (!observe) return i;
  meter
    .createObservableCounter("agentsh.policy.evaluations", {
      description: "Policy evaluations by kind, operation, decision and the rule that decided",
      unit: "{evaluation}",
    })
    .addCallback((r) => {
      for (const s of evalSlots) r.observe(s.n, s.attrs);
    });
  i.reloads.add(0, { result: "success" });
  i.reloads.add(0, { result: "failure" });
  const version = meter.createObservableGauge("agentsh.policy.version.info", {
    description: "Policy version loaded by this replica: 1 for the current one, 0 for earlier ones",
  });
  const loadedAt = meter.createObservableGauge("agentsh.policy.version.loaded_time", {
    description: "When this replica loaded its current policy version (Unix time)",
    unit: "s",
  });
  meter.addBatchObservableCallback(
    (r) => {
      for (const s of stores) {
        const cur = s.current;
        for (const v of versionsOf(s))
          r.observe(version, v.version === cur.version ? 1 : 0, {
            component: "policy-server",
            policy_version: v.version,
            policy_name: v.name,
            mode: v.mode,
          });
        r.observe(loadedAt, cur.loadedAtMs / 1000);
      }
    },
    [version, loadedAt],
  );
  return i;
}

function versionsOf(s: PolicyStore): PolicyVersion[] {
  let list = seenVersions.get(s);
  if (!list) {
    list = [];
    seenVersions.set(s, list);
  }
  const cur = s.current;
  if (list[list.length - 1]?.version !== cur.version) {
    const at = list.findIndex((v) => v.version === cur.version);
    if (at >= 0) list.splice(at, 1);
    list.push(cur);
    if (list.length > 8) list.shift();
  }
  return list;
}

/** Observe a store's policy version (startPolicyServer calls it; close calls the returned function). */
export function observeStore(store: PolicyStore): () => void {
  stores.add(store);
  instruments();
  return () => stores.delete(store);
}

/** A policy reload's outcome (server-store.ts). */
export function reloadCounted(result: "success" | "failure"): void {
  instruments().reloads.add(1, result === "success" ? SUCCESS : FAILURE);
}
const SUCCESS = Object.freeze({ result: "success" });
const FAILURE = Object.freeze({ result: "failure" });

// -- evaluation ------------------------------------------------------------------------------------

// agentsh.policy.evaluations is counted here and observed at collection (a synchronous counter
// hashes its four attributes on every add). Rules are named in the policy: a bounded set.
// Nested maps keyed by the four values themselves: a concatenated key would be a new string to
// flatten and hash on every check.
interface EvalSlot {
  attrs: Attributes;
  n: number;
}
const evalSlots: EvalSlot[] = [];
const evalIndex = new Map<string, Map<string, Map<string, Map<string, EvalSlot>>>>();
const newMap = () => new Map();
function countEvaluation(input: CheckInput, d: Decision): void {
  const rules = getOrAdd(
    getOrAdd(getOrAdd(evalIndex, input.kind, newMap), input.operation, newMap),
    d.decision,
    newMap,
  );
  let s = rules.get(d.rule);
  if (!s) {
    const attrs = Object.freeze({
      kind: input.kind,
      operation: input.operation,
      decision: d.decision,
      rule: d.rule,
    });
    s = { attrs, n: 0 };
    evalSlots.push(s);
    rules.set(d.rule, s);
  }
  s.n++;
}
const evaluationSeries = new Map<string, HistogramSeries>();
function evaluationSeriesOf(kind: string): HistogramSeries {
  let s = evaluationSeries.get(kind);
  if (!s) {
    s = evaluationDuration.series({ kind });
    evaluationSeries.set(kind, s);
  }
  return s;
}

const SERVER_SPAN = createContextKey<Span | undefined>(undefined, { description: "agentsh server span" });

/** A check's trace context: W3C's in traceparent and tracestate, or in the deprecated trace_context
 * map from brokers older than those fields (any other propagator's fields are in that map too). */
type CheckTrace = Pick<CheckRequest, "traceparent" | "tracestate" | "traceContext">;

/**
 * Decides `input` with `engine`, counting and timing it. Its span: the call's SERVER span (unary,
 * from the interceptor) or, for a check on CheckStream, one made here from the check's trace context.
 */
export function evaluate(
  engine: PolicyEngine,
  input: CheckInput,
  ctx: HandlerContext,
  check?: CheckTrace,
): Decision {
  const span = ctx.values.get(SERVER_SPAN);
  // A check with its own trace context (CheckStream): its SERVER span is made by evaluateTraced. An
  // untraced check only has the two places a traceparent may be looked at: the traced path's code
  // never runs with it.
  if (span === undefined && check !== undefined) {
    if (check.traceparent)
      return evaluateTraced(engine, input, ctx, check, check.traceparent, check.tracestate);
    const old = check.traceContext; // a broker older than the fields
    if (old.traceparent) return evaluateTraced(engine, input, ctx, check, old.traceparent, old.tracestate);
  }
  const started = performance.now();
  const d = engine.decide(input);
  evaluated(input, d, started);
  // kind and operation are on the broker's span, the path in the broker's audit record.
  if (span?.isRecording()) span.setAttributes(decisionSpanAttrs(d));
  return d;
}

/** Counts and times an evaluation that started at `started`. */
function evaluated(input: CheckInput, d: Decision, started: number): void {
  evaluationSeriesOf(input.kind).record((performance.now() - started) / 1000);
  countEvaluation(input, d);
  instruments(); // binds the observed instruments to an SDK started after this server
}

/** evaluate for a check that carries `traceparent` (and `tracestate`, from the same place). When
 * light spans are on, its SERVER span is only recorded here and made at the next flush
 * (telemetry/light-trace.ts: deferRemoteChild). */
function evaluateTraced(
  engine: PolicyEngine,
  input: CheckInput,
  ctx: HandlerContext,
  check: CheckTrace,
  traceparent: string,
  tracestate: string | undefined,
): Decision {
  let span: Span | undefined;
  if (!lightTracing()) {
    // Another propagator's fields (in the map) next to W3C's.
    const carrier: Record<string, string> = { ...check.traceContext, traceparent };
    if (tracestate) carrier.tracestate = tracestate;
    span = serverTracer().startSpan(
      `${ctx.service.typeName}/${ctx.method.name}`,
      { kind: SpanKind.SERVER, attributes: rpcSpanAttrs(ctx.service.typeName, ctx.method.name) },
      extractTraceContext(carrier, recordCarrier),
    );
  }
  const started = performance.now();
  let d: Decision;
  try {
    d = engine.decide(input);
  } catch (e) {
    const status = { code: SpanStatusCode.ERROR, message: (e as Error).message };
    if (span) {
      span.setStatus(status);
      span.end();
    } else deferServerSpan(ctx, traceparent, tracestate, started, undefined, status);
    throw e;
  }
  evaluated(input, d, started);
  if (span) {
    span.setAttributes(decisionSpanAttrs(d));
    span.setAttribute("rpc.grpc.status_code", 0);
    span.end();
  } else deferServerSpan(ctx, traceparent, tracestate, started, d);
  return d;
}

/** What a check's SERVER span says of its decision (kind and operation are on the broker's span). */
function decisionSpanAttrs(d: Decision): Attributes {
  return {
    "agentsh.decision": d.decision,
    "agentsh.rule": d.rule,
    "agentsh.policy_version": d.policyVersion,
  };
}

/** The SERVER span of a check whose trace context came in the check itself (see evaluateTraced). */
function deferServerSpan(
  ctx: HandlerContext,
  traceparent: string,
  tracestate: string | undefined,
  started: number,
  d: Decision | undefined,
  status?: { code: SpanStatusCode; message: string },
): void {
  const service = ctx.service.typeName;
  const method = ctx.method.name;
  const attributes = rpcSpanAttrs(service, method);
  if (d !== undefined) Object.assign(attributes, decisionSpanAttrs(d), { "rpc.grpc.status_code": 0 });
  deferRemoteChild(
    SCOPE_INFO,
    `${service}/${method}`,
    SpanKind.SERVER,
    traceparent,
    tracestate,
    started,
    performance.now(),
    attributes,
    status,
  );
}

// -- RPC ---------------------------------------------------------------------------------------------

function rpcSpanAttrs(service: string, method: string): Attributes {
  return { "rpc.system": "grpc", "rpc.service": service, "rpc.method": method };
}

const rpcServerSeries = rpcSeriesLookup(rpcServerDuration);

const headerGetter: TextMapGetter<Headers> = {
  get: (h: Headers, k: string) => h.get(k) ?? undefined,
  keys: (h: Headers) => [...h.keys()],
};

/** gRPC status code of a handler error (connect codes are the gRPC codes). */
function codeOf(e: unknown): number {
  return e instanceof ConnectError ? e.code : Code.Unknown;
}

/**
 * rpc.server.duration for every call and, for unary calls that carry a W3C trace context, the SERVER
 * span (the handler's evaluation becomes its child).
 */
export function telemetryInterceptor(): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const service = req.service.typeName;
    const method = req.method.name;
    const record = (code: number, span?: Span) => {
      rpcServerSeries(service, method, code).record(performance.now() - started);
      if (span) {
        span.setAttribute("rpc.grpc.status_code", code);
        if (code !== 0) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      }
    };
    let span: Span | undefined;
    if (!req.stream && req.header.has("traceparent")) {
      const parent: Context = extractTraceContext(req.header, headerGetter);
      span = serverTracer().startSpan(
        `${service}/${method}`,
        { kind: SpanKind.SERVER, attributes: rpcSpanAttrs(service, method) },
        parent,
      );
      req.contextValues.set(SERVER_SPAN, span);
    }
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (e) {
      record(codeOf(e), span);
      throw e;
    }
    if (!res.stream) {
      record(0, span);
      return res;
    }
    // A stream's call ends when its responses do.
    const inner = res.message;
    let done = false;
    const finish = (code: number) => {
      if (done) return;
      done = true;
      record(code);
    };
    const message: AsyncIterable<unknown> = {
      [Symbol.asyncIterator]() {
        const it = inner[Symbol.asyncIterator]();
        return {
          next: () =>
            it.next().then(
              (r) => {
                if (r.done) finish(0);
                return r;
              },
              (e) => {
                finish(codeOf(e));
                throw e;
              },
            ),
          return: (v?: unknown) => {
            finish(Code.Canceled);
            return it.return ? it.return(v) : Promise.resolve({ done: true as const, value: v });
          },
        };
      },
    };
    return { ...res, message } as typeof res;
  };
}
