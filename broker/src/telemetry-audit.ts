// The audit record of every decision that is not a plain allowed server answer: deny, approve, audit,
// redirect, fail mode, stale (plain allowed cache hits never reach the broker: the driver answers
// them). Session, pid, operation, path, rule, policy version, latency, trace and span ids.
import { Decision } from "@agentsh/proto";
import { type Logger, traceFields } from "@agentsh/telemetry";
import type { DecisionRecord } from "./decide.js";
import { decisionName, kindName, operationName } from "./telemetry-metrics.js";

/** True when a decision needs an audit record. */
export function isAudited(rec: DecisionRecord): boolean {
  return rec.source !== "server" || rec.response.decision !== Decision.ALLOW;
}

/** A BrokerHooks.onDecision that writes the audit record (pass to `new Broker(config, hooks)`). */
export function auditHook(logger: Logger): (rec: DecisionRecord) => void {
  return (rec) => {
    if (!isAudited(rec)) return;
    const { check, response, request } = rec;
    logger.info(
      {
        audit: true,
        session: String(request.sessionToken),
        agent: rec.session?.agent || undefined,
        pid: request.processId,
        kind: kindName(check.kind),
        operation: operationName(check.operation),
        path: check.path,
        rename_dest: check.renameDest || undefined,
        value_name: check.valueName || undefined,
        decision: decisionName(response.decision),
        enforced: rec.reply.decision === 0 ? "allow" : "deny",
        source: rec.source,
        rule: response.rule,
        policy_version: response.policyVersion || undefined,
        mitre: response.mitreTechnique || undefined,
        approval: rec.approval,
        reason: rec.reason,
        latency_ms: Math.round(rec.latencyMs * 1000) / 1000,
        ...traceFields(rec.span?.spanContext()),
      },
      "decision",
    );
  };
}
