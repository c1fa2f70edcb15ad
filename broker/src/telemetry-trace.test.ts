// A check's own trace context (CheckStream): W3C's in its traceparent and tracestate fields, other
// propagators' fields in the trace_context map.
import { CheckRequestSchema } from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterEach, describe, expect, it } from "vitest";
import { startTelemetry, type Telemetry } from "./telemetry.js";
import { POLICY_SERVICE, RpcCall, startDecisionSpan } from "./telemetry-trace.js";

let telemetry: Telemetry | undefined;
afterEach(async () => {
  await telemetry?.shutdown();
  telemetry = undefined;
});

async function injected(propagators: string) {
  telemetry = await startTelemetry("agentsh-trace-unit", {
    env: {
      OTEL_METRICS_EXPORTER: "none",
      OTEL_TRACES_SAMPLER: "parentbased_always_on",
      OTEL_PROPAGATORS: propagators,
    },
    spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())],
  });
  const root = startDecisionSpan({});
  const rpc = new RpcCall(POLICY_SERVICE, "CheckStream", root, false);
  const check = create(CheckRequestSchema, {});
  rpc.injectInto(check);
  const sc = root.spanContext();
  root.end();
  return { check, parent: `00-${sc.traceId}-${sc.spanId}-01` };
}

describe("the trace context a check carries", () => {
  it("W3C alone: the two fields, the map left empty", async () => {
    const { check, parent } = await injected("tracecontext,baggage");
    expect(check.traceparent).toBe(parent);
    expect(check.tracestate).toBe("");
    expect(check.traceContext).toEqual({});
  });

  it("with another propagator: its fields in the map, W3C's still in the fields", async () => {
    const { check, parent } = await injected("tracecontext,b3multi");
    expect(check.traceparent).toBe(parent);
    expect(check.traceContext).not.toHaveProperty("traceparent");
    expect(check.traceContext["x-b3-traceid"]).toBe(parent.split("-")[1]);
    expect(check.traceContext["x-b3-spanid"]).toBe(parent.split("-")[2]);
  });

  it("untraced: nothing", async () => {
    telemetry = await startTelemetry("agentsh-trace-unit", {
      env: { OTEL_METRICS_EXPORTER: "none", OTEL_TRACES_SAMPLER: "parentbased_always_off" },
    });
    const root = startDecisionSpan({});
    const check = create(CheckRequestSchema, {});
    new RpcCall(POLICY_SERVICE, "CheckStream", root, false).injectInto(check);
    expect([check.traceparent, check.tracestate, check.traceContext]).toEqual(["", "", {}]);
  });
});
