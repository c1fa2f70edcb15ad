// The audit record of every decision that is not a plain allowed server answer: deny, approve, audit,
// redirect, fail mode, stale, and the decisions the driver made alone that it reports (denials from
// its cache, its fail-mode answers: source driver_cache / driver_fail_mode; plain allowed cache hits
// are never reported). Session, pid, operation, path, rule, policy version, latency, trace and span
// ids; `suppressed` on a driver report counts the reports its rate limit left out before it.
//
// Nearly every uncached decision is audited, so the record is written by a fixed-shape writer
// (telemetry/log.ts recordWriter: the JSON line pino would write, built from precomputed keys, and
// the OpenTelemetry log record when logs are exported) from one reused array of values.
import { Decision } from "@agentsh/proto";
import { type FieldValue, type Logger, NOT_SAMPLED, recordWriter } from "@agentsh/telemetry";
import type { DecisionRecord } from "./decide.js";
import type { DriverEvent } from "./port/port-client.js";
import { MsgType, RegOp } from "./port/protocol.js";
import { decisionName, kindName, operationName } from "./telemetry-metrics.js";

/** The audit record's fields, in the order they are written. */
export const AUDIT_FIELDS = [
  "audit",
  "session",
  "agent",
  "pid",
  "kind",
  "operation",
  "path",
  "rename_dest",
  "value_name",
  "decision",
  "enforced",
  "source",
  "rule",
  "policy_version",
  "mitre",
  "approval",
  "reason",
  "latency_ms",
  "suppressed",
] as const;

/** True when a decision needs an audit record. */
export function isAudited(rec: DecisionRecord): boolean {
  return rec.source !== "server" || rec.response.decision !== Decision.ALLOW;
}

/** The values of AUDIT_FIELDS for `rec`, into `v` (reused). */
export function auditValues(rec: DecisionRecord, v: FieldValue[]): FieldValue[] {
  const { check, response, request } = rec;
  v[0] = true;
  v[1] = String(request.sessionToken);
  v[2] = rec.session?.agent || undefined;
  v[3] = request.processId;
  v[4] = kindName(check.kind);
  v[5] = operationName(check.operation);
  v[6] = check.path;
  v[7] = check.renameDest || undefined;
  v[8] = check.valueName || undefined;
  v[9] = decisionName(response.decision);
  v[10] = rec.reply.decision === 0 ? "allow" : "deny";
  v[11] = rec.source;
  v[12] = response.rule;
  v[13] = response.policyVersion || undefined;
  v[14] = response.mitreTechnique || undefined;
  v[15] = rec.approval;
  v[16] = rec.reason;
  // The driver's own decisions take microseconds and are not timed; a report may stand for more.
  v[17] = rec.source.startsWith("driver_") ? undefined : Math.round(rec.latencyMs * 1000) / 1000;
  v[18] = rec.suppressed || undefined;
  return v;
}

/** A BrokerHooks.onDecision that writes the audit record (pass to `new Broker(config, hooks)`). */
export function auditHook(logger: Logger): (rec: DecisionRecord) => void {
  const write = recordWriter(logger, "decision", AUDIT_FIELDS);
  const values: FieldValue[] = new Array(AUDIT_FIELDS.length);
  return (rec) => {
    if (!isAudited(rec)) return;
    // The span has ended (decisionDone); an untraced decision's has no ids to give.
    const span = rec.span;
    write(auditValues(rec, values), span && span !== NOT_SAMPLED ? span.spanContext() : undefined);
  };
}

const REG_OP_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(RegOp).map(([name, v]) => [v, name.toLowerCase()]),
);

/**
 * A Broker onEvent hook that writes the driver's report of how a registry operation ended (sent
 * only with driver.audit_results): an audit record with the NTSTATUS, next to the decision's own.
 */
export function resultHook(logger: Logger): (ev: DriverEvent) => void {
  return (ev) => {
    if (ev.type !== MsgType.AUDIT_EVENT) return;
    logger.info(
      {
        audit: true,
        event: "registry_result",
        session: String(ev.sessionToken),
        pid: ev.processId,
        operation: REG_OP_NAMES[ev.operation] ?? String(ev.operation),
        path: ev.path,
        value_name: ev.valueName || undefined,
        status: `0x${(ev.status >>> 0).toString(16).padStart(8, "0")}`,
        succeeded: ev.status >= 0,
      },
      "registry operation result",
    );
  };
}
