// The broker's traces, through the OpenTelemetry API only. One trace per uncached decision, two
// spans in the normal case (every span costs; see broker/bench/otel-bench.ts):
//   agentsh.decide (CLIENT, the driver's question to its reply; its first RPC attempt is this span)
//     -> the policy server's SERVER span, with the evaluation and the rule that decided
//   plus, only when they happen, a CLIENT span per retry on another replica and one for the wait
//   for a human's approval.
// The W3C trace context travels in the check's traceparent and tracestate fields on the multiplexed
// CheckStream and in gRPC metadata on unary calls. Context is passed explicitly (no async context
// manager, see telemetry/sdk.ts).
import type { CheckRequest } from "@agentsh/proto";
import {
  injectTraceContext,
  NOT_SAMPLED,
  recordCarrier,
  recording,
  rootSpanContext,
  tracerFor,
} from "@agentsh/telemetry";
import { status as GrpcStatus, Metadata, type ServiceError } from "@grpc/grpc-js";
import {
  type Attributes,
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapSetter,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { RelayError } from "./relay/relay-error.js";
import { rpcClientSeries, SCOPE, SCOPE_VERSION } from "./telemetry-metrics.js";

/** The broker's tracer (light spans when they are on: telemetry/light-trace.ts). */
export const brokerTracer: () => Tracer = tracerFor({ name: SCOPE, version: SCOPE_VERSION });

/**
 * The root span of one decision in `ctx` (rootSpanContext's answer), or NOT_SAMPLED (shared, records
 * nothing) when this decision is not traced (`ctx` undefined).
 */
export function startDecisionSpan(
  attributes: Attributes,
  ctx: Context | undefined = rootSpanContext(),
): Span {
  if (!ctx) return NOT_SAMPLED;
  return brokerTracer().startSpan("agentsh.decide", { kind: SpanKind.CLIENT, attributes }, ctx);
}

export const POLICY_SERVICE = "agentsh.v1.PolicyService";
export const APPROVAL_SERVICE = "agentsh.v1.ApprovalService";

/**
 * One outbound RPC and its rpc.client.duration measurement. Its span: `parent` itself when `own` is
 * false (the decision's first attempt), else a CLIENT span of its own, child of `parent`.
 */
export class RpcCall {
  private readonly started = performance.now();
  readonly span: Span;
  private readonly own: boolean;

  constructor(
    readonly service: string,
    readonly method: string,
    parent: Span | undefined,
    own = true,
  ) {
    this.own = own || !parent;
    // A decision that is not traced: no span for its RPCs either (they would be its children).
    if (parent !== undefined && !recording(parent)) {
      this.span = parent;
      return;
    }
    const attributes = { "rpc.system": "grpc", "rpc.service": service, "rpc.method": method };
    if (!this.own) {
      this.span = parent!;
      this.span.setAttributes(attributes);
      return;
    }
    const ctx = parent ? trace.setSpan(ROOT_CONTEXT, parent) : rootSpanContext();
    this.span = ctx
      ? brokerTracer().startSpan(`${service}/${method}`, { kind: SpanKind.CLIENT, attributes }, ctx)
      : NOT_SAMPLED;
  }

  /** Puts the trace context of this call in the check itself (multiplexed stream): W3C's in its
   * traceparent and tracestate, any other propagator's fields (OTEL_PROPAGATORS) in trace_context. */
  injectInto(req: CheckRequest): void {
    if (!recording(this.span)) return;
    const carrier: Record<string, string> = {};
    injectTraceContext(this.span, carrier, recordCarrier);
    const { traceparent, tracestate, ...others } = carrier;
    req.traceparent = traceparent ?? "";
    req.tracestate = tracestate ?? "";
    if (Object.keys(others).length > 0) req.traceContext = others;
  }

  /** gRPC metadata with the W3C trace context of this call (unary). */
  metadata(): Metadata {
    const md = new Metadata();
    if (recording(this.span)) injectTraceContext(this.span, md, metadataSetter);
    return md;
  }

  end(err?: unknown): void {
    const code = err === undefined ? GrpcStatus.OK : grpcCode(err);
    rpcClientSeries(this.service, this.method, code).record(performance.now() - this.started);
    if (recording(this.span)) {
      this.span.setAttribute("rpc.grpc.status_code", code);
      if (!this.own) return; // the decision's span: decisionDone ends it
      if (err !== undefined)
        this.span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message ?? String(err) });
      this.span.end();
    }
  }
}

const metadataSetter: TextMapSetter<Metadata> = {
  set: (m, k, v) => m.set(k, v),
};

const RELAY_CODES: Record<string, number> = {
  deadline: GrpcStatus.DEADLINE_EXCEEDED,
  unavailable: GrpcStatus.UNAVAILABLE,
  invalid: GrpcStatus.INVALID_ARGUMENT,
  internal: GrpcStatus.INTERNAL,
};

function grpcCode(err: unknown): number {
  if (err instanceof RelayError) return RELAY_CODES[err.code] ?? GrpcStatus.UNKNOWN;
  const c = (err as Partial<ServiceError>)?.code;
  return typeof c === "number" ? c : GrpcStatus.UNKNOWN;
}
