// Telemetry of one uncached decision (decide.ts): its span, the decision counter, the end-to-end
// latency histogram and the approval outcome. API only: no-ops without an SDK.
import { type CheckRequest, Decision } from "@agentsh/proto";
import { NOT_SAMPLED, recording, rootSpanContext } from "@agentsh/telemetry";
import { type Attributes, type Span, SpanStatusCode } from "@opentelemetry/api";
import type { DecisionRecord } from "./decide.js";
import {
  brokerInstruments,
  countDecision,
  decisionName,
  kindName,
  operationName,
  recordDecisionLatency,
} from "./telemetry-metrics.js";
import { startDecisionSpan } from "./telemetry-trace.js";

const OUTCOMES: Record<string, Attributes> = {
  approved: { outcome: "approved" },
  denied: { outcome: "denied" },
  timed_out: { outcome: "timed_out" },
};

/** The decision's root span: NOT_SAMPLED, built from nothing, unless this decision is traced. */
export function decisionStarted(check: CheckRequest): Span {
  const ctx = rootSpanContext();
  if (ctx === undefined) return NOT_SAMPLED;
  return startDecisionSpan(
    { "agentsh.kind": kindName(check.kind), "agentsh.operation": operationName(check.operation) },
    ctx,
  );
}

export function decisionDone(rec: DecisionRecord): void {
  const { check, response, source } = rec;
  const i = brokerInstruments(); // binds the observed instruments to an SDK started late
  countDecision(check.kind, check.operation, response.decision, source);
  // A human's think time is not decision latency.
  if (response.decision !== Decision.APPROVE) recordDecisionLatency(check.kind, source, rec.latencyMs / 1000);
  if (rec.approval) i.approvals.add(1, OUTCOMES[rec.approval]);
  const span = rec.span;
  if (!recording(span)) return;
  span.setAttributes({
    "agentsh.decision": decisionName(response.decision),
    "agentsh.enforced": rec.reply.decision === 0 ? "allow" : "deny",
    "agentsh.source": source,
    "agentsh.rule": response.rule,
    "agentsh.policy_version": response.policyVersion,
    "agentsh.session": String(rec.request.sessionToken),
  });
  if (rec.approval) span.setAttribute("agentsh.approval", rec.approval);
  if (source !== "server") span.setStatus({ code: SpanStatusCode.ERROR, message: rec.reason ?? source });
  span.end();
}
