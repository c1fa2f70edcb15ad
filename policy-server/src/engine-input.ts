/**
 * Turning untrusted input (JSON lines of `agentsh-policy check`, test cases) into CheckInput and
 * Decisions into their JSON form. Every problem is a PolicyError "invalid_argument" naming the field.
 */
import type { SessionInfo } from "./engine-session.js";
import type { CheckInput, Decision } from "./engine-types.js";
import type { Kind } from "./path-types.js";
import { VolumeMap } from "./path-volumes.js";
import { PolicyError } from "./policy-error.js";
import { OPERATIONS, type Operation } from "./policy-types.js";

const MAX_FIELD = 65536;

function bad(field: string, why: string): PolicyError {
  return new PolicyError("invalid_argument", `${field}: ${why}`);
}

function str(o: Record<string, unknown>, field: string, prefix = ""): string | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw bad(prefix + field, "must be a string");
  if (v.length > MAX_FIELD) throw bad(prefix + field, `longer than ${MAX_FIELD} characters`);
  return v;
}

export function checkInputFromJson(
  value: unknown,
  defaults: { volumes?: VolumeMap | undefined } = {},
): CheckInput {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw bad("request", "must be a JSON object");
  const o = value as Record<string, unknown>;
  const kind = str(o, "kind") ?? "file";
  if (kind !== "file" && kind !== "registry") throw bad("kind", 'must be "file" or "registry"');
  const operation = str(o, "operation");
  if (operation === undefined) throw bad("operation", "is required");
  if (!(OPERATIONS as readonly string[]).includes(operation))
    throw bad("operation", `must be one of ${OPERATIONS.join(", ")}`);
  const path = str(o, "path");
  if (!path) throw bad("path", "is required");
  const input: CheckInput = { kind: kind as Kind, operation: operation as Operation, path };
  const renameDest = str(o, "rename_dest");
  if (operation === "rename" && !renameDest) throw bad("rename_dest", "is required for operation rename");
  if (renameDest !== undefined) input.renameDest = renameDest;
  const valueName = str(o, "value_name");
  if (valueName !== undefined) input.valueName = valueName;
  if (o.pid !== undefined) {
    if (typeof o.pid !== "number" || !Number.isInteger(o.pid) || o.pid < 0)
      throw bad("pid", "must be a non-negative integer");
    input.pid = o.pid;
  }
  if (o.session !== undefined && o.session !== null) input.session = sessionFromJson(o.session, "session.");
  if (o.volumes !== undefined && o.volumes !== null) input.volumes = volumesFromJson(o.volumes, "volumes");
  else if (defaults.volumes) input.volumes = defaults.volumes;
  return input;
}

export function sessionFromJson(value: unknown, prefix = "session."): SessionInfo {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw bad(prefix.slice(0, -1), "must be an object");
  const o = value as Record<string, unknown>;
  const s: SessionInfo = {};
  const ws = str(o, "workspace", prefix);
  if (ws) s.workspace = ws;
  const sid = str(o, "user_sid", prefix);
  if (sid) s.userSid = sid;
  const prof = str(o, "user_profile", prefix);
  if (prof) s.userProfile = prof;
  const host = str(o, "host", prefix);
  if (host) s.host = host;
  return s;
}

/** `[{"device":"\\Device\\HarddiskVolume3","drive":"C:"}]`, `{"C:":"\\Device\\..."}` or `["C:=\\Device\\..."]`. */
export function volumesFromJson(value: unknown, field: string): VolumeMap {
  const entries: [string, string][] = [];
  try {
    if (Array.isArray(value)) {
      value.forEach((v, i) => {
        if (typeof v === "string") entries.push(VolumeMap.parseEntry(v));
        else if (
          typeof v === "object" &&
          v !== null &&
          typeof v.device === "string" &&
          typeof v.drive === "string"
        ) {
          entries.push([v.device, v.drive]);
        } else throw bad(`${field}[${i}]`, 'must be {"device":..,"drive":..} or "C:=\\\\Device\\\\..."');
      });
    } else if (typeof value === "object" && value !== null) {
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== "string") throw bad(`${field}.${k}`, "must be a string");
        entries.push(VolumeMap.parseEntry(`${k}=${v}`));
      }
    } else throw bad(field, "must be a list or an object");
    return new VolumeMap(entries);
  } catch (err) {
    if (err instanceof PolicyError) throw err;
    throw bad(field, (err as Error).message);
  }
}

/** The JSON form of a decision (snake_case, as `agentsh-policy check` prints it). */
export function decisionToJson(d: Decision): Record<string, unknown> {
  const o: Record<string, unknown> = {
    decision: d.decision,
    rule: d.rule,
    pattern: d.pattern,
    mitre: d.mitre,
    cache_ttl_ms: d.cacheTtlMs,
    message: d.message,
    policy_version: d.policyVersion,
    mode: d.mode,
    canonical_path: d.canonicalPath,
  };
  if (d.mode === "monitor") {
    o.enforced_decision = d.enforcedDecision;
    o.would_deny = d.wouldDeny;
  }
  if (d.risk) o.risk = d.risk;
  if (d.decidedSide) o.decided_side = d.decidedSide;
  if (d.reason) o.reason = d.reason;
  if (d.redirectPath !== undefined) o.redirect_path = d.redirectPath;
  if (d.approvalTimeoutMs !== undefined) o.approval_timeout_ms = d.approvalTimeoutMs;
  if (d.notify) o.notify = true;
  return o;
}
