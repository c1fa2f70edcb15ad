// The telemetry plumbing itself: the two services share their SDK and log setup verbatim; without an
// SDK every instrument is a no-op; with OTEL_LOGS_EXPORTER the audit records become OpenTelemetry
// log records carrying the decision's trace.
import { Writable } from "node:stream";
import { CheckRequestSchema, CheckResponseSchema, Decision, Kind, Operation } from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import { metrics, trace } from "@opentelemetry/api";
import { InMemoryLogRecordExporter, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { describe, expect, it } from "vitest";
import type { DecisionRecord } from "../../broker/src/decide.js";
import { auditHook, createLogger, startTelemetry } from "../../broker/src/telemetry.js";
import { decisionDone, decisionStarted } from "../../broker/src/telemetry-decision.js";

function record(decision: Decision, source: DecisionRecord["source"]): DecisionRecord {
  const check = create(CheckRequestSchema, {
    kind: Kind.FILE,
    operation: Operation.READ,
    path: "C:\\Users\\dev\\.ssh\\id_rsa",
  });
  return {
    request: { sessionToken: 9n, processId: 42 } as DecisionRecord["request"],
    check,
    response: create(CheckResponseSchema, { decision, rule: "secrets", policyVersion: "3-abc" }),
    source,
    reply: { decision: decision === Decision.ALLOW ? 0 : 1, cacheTTLMs: 0 },
    latencyMs: 0.42,
    span: decisionStarted(check),
  };
}

describe("telemetry plumbing", () => {
  it("without an SDK the instruments and spans are no-ops", () => {
    const rec = record(Decision.DENY, "server");
    expect(rec.span!.isRecording()).toBe(false);
    decisionDone(rec);
    expect(metrics.getMeterProvider().constructor.name).toBe("NoopMeterProvider");
  });

  it("audit records are JSON lines and, with logs exported, OpenTelemetry log records in the trace", async () => {
    const spans = new InMemorySpanExporter();
    const logs = new InMemoryLogRecordExporter();
    const t = await startTelemetry("agentsh-broker", {
      env: { OTEL_METRICS_EXPORTER: "none", OTEL_TRACES_SAMPLER: "parentbased_always_on" },
      spanProcessors: [new SimpleSpanProcessor(spans)],
      logRecordProcessors: [new SimpleLogRecordProcessor({ exporter: logs })],
    });
    try {
      const lines: string[] = [];
      const sink = new Writable({
        write(chunk, _e, cb) {
          lines.push(...String(chunk).split("\n").filter(Boolean));
          cb();
        },
      });
      const logger = createLogger({ service: "agentsh-broker", destination: sink as never });
      const audit = auditHook(logger);
      const deny = record(Decision.DENY, "server");
      decisionDone(deny);
      audit(deny);
      audit(record(Decision.ALLOW, "server")); // plain allowed server answer: no record
      audit(record(Decision.ALLOW, "fail_mode"));
      for (let i = 0; i < 100 && (lines.length < 2 || logs.getFinishedLogRecords().length < 2); i++)
        await new Promise((r) => setTimeout(r, 20));
      const json = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(json).toHaveLength(2);
      const traceId = deny.span!.spanContext().traceId;
      expect(json[0]).toMatchObject({
        level: 30,
        msg: "decision",
        service: "agentsh-broker",
        audit: true,
        session: "9",
        pid: 42,
        operation: "read",
        path: "C:\\Users\\dev\\.ssh\\id_rsa",
        rule: "secrets",
        policy_version: "3-abc",
        decision: "deny",
        source: "server",
        latency_ms: 0.42,
        trace_id: traceId,
        span_id: deny.span!.spanContext().spanId,
      });
      expect(json[1]).toMatchObject({ source: "fail_mode", enforced: "allow" });
      const otel = logs.getFinishedLogRecords();
      expect(otel).toHaveLength(2);
      expect(otel[0]!.body).toBe("decision");
      expect(otel[0]!.attributes).toMatchObject({ rule: "secrets", path: "C:\\Users\\dev\\.ssh\\id_rsa" });
      expect(otel[0]!.spanContext?.traceId).toBe(traceId);
      // Decision spans reach the span processors in batches (telemetry/light-trace.ts): flush them.
      await t.flush();
      expect(spans.getFinishedSpans().map((s) => s.name)).toContain("agentsh.decide");
    } finally {
      await t.shutdown();
    }
    expect(trace.getTracerProvider().constructor.name).toBe("ProxyTracerProvider");
  });
});
