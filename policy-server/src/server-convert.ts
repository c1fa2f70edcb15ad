/** Proto <-> engine conversions, with validation that names the offending field. */
import {
  type CheckError,
  type CheckRequest,
  type CheckResponse,
  type CheckStreamResponse,
  Decision as PDecision,
  Kind as PKind,
  PolicyMode as PMode,
  Operation as POperation,
  type WatchPolicyResponse,
  WatchPolicyResponseSchema,
} from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { CheckInput, Decision } from "./engine-types.js";
import { VolumeMap } from "./path-volumes.js";
import type { DecisionKind, Operation } from "./policy-types.js";
import type { PolicyVersion } from "./server-store.js";

const MAX_PATH = 65536;
const OPS: Record<number, Operation> = {
  [POperation.READ]: "read",
  [POperation.WRITE]: "write",
  [POperation.CREATE]: "create",
  [POperation.DELETE]: "delete",
  [POperation.RENAME]: "rename",
};
const DECISION: Record<DecisionKind, PDecision> = {
  allow: PDecision.ALLOW,
  deny: PDecision.DENY,
  approve: PDecision.APPROVE,
  audit: PDecision.AUDIT,
  redirect: PDecision.REDIRECT,
};

/** "<field> <why>": no ':' because grpc-js does not percent-decode it in grpc-message. */
function invalid(field: string, why: string): ConnectError {
  return new ConnectError(`${field} ${why}`, Code.InvalidArgument);
}

/** Bounded cache of volume maps by content, so a broker's map is not rebuilt per request. */
const volumeCache = new Map<string, VolumeMap>();

function volumes(req: CheckRequest): VolumeMap | undefined {
  if (req.volumes.length === 0) return undefined;
  let key = "";
  for (const v of req.volumes) key += `${v.device}\0${v.drive}\0`;
  const hit = volumeCache.get(key);
  if (hit) return hit;
  const entries: [string, string][] = [];
  req.volumes.forEach((v, i) => {
    if (v.device === "" || v.device.length > 1024)
      throw invalid(`volumes[${i}].device`, "must be an NT device name");
    if (!/^[A-Za-z]:(\\.{0,1024})?$/.test(v.drive))
      throw invalid(`volumes[${i}].drive`, "must be a drive letter and colon such as C");
    entries.push([v.device, v.drive]);
  });
  let map: VolumeMap;
  try {
    map = new VolumeMap(entries);
  } catch (err) {
    throw invalid("volumes", (err as Error).message);
  }
  if (volumeCache.size > 256) volumeCache.clear();
  volumeCache.set(key, map);
  return map;
}

export function checkInputFromProto(req: CheckRequest): CheckInput {
  const kind = req.kind === PKind.FILE ? "file" : req.kind === PKind.REGISTRY ? "registry" : undefined;
  if (!kind) throw invalid("kind", "must be KIND_FILE or KIND_REGISTRY");
  const operation = OPS[req.operation];
  if (!operation)
    throw invalid(
      "operation",
      "must be one of OPERATION_READ OPERATION_WRITE OPERATION_CREATE OPERATION_DELETE OPERATION_RENAME",
    );
  if (req.path === "") throw invalid("path", "is required");
  if (req.path.length > MAX_PATH) throw invalid("path", `longer than ${MAX_PATH} characters`);
  if (operation === "rename" && req.renameDest === "")
    throw invalid("rename_dest", "is required for OPERATION_RENAME");
  if (req.renameDest.length > MAX_PATH) throw invalid("rename_dest", `longer than ${MAX_PATH} characters`);
  if (req.valueName.length > MAX_PATH) throw invalid("value_name", `longer than ${MAX_PATH} characters`);
  const input: CheckInput = { kind, operation, path: req.path };
  if (req.renameDest !== "") input.renameDest = req.renameDest;
  if (req.valueName !== "") input.valueName = req.valueName;
  if (req.pid !== 0) input.pid = req.pid;
  const s = req.session;
  if (s) {
    for (const f of ["workspace", "userSid", "userProfile", "host"] as const) {
      if (s[f].length > MAX_PATH) throw invalid(`session.${f}`, "too long");
    }
    input.session = { workspace: s.workspace, userSid: s.userSid, userProfile: s.userProfile, host: s.host };
  }
  const v = volumes(req);
  if (v) input.volumes = v;
  return input;
}

// The answers are object literals with every field, not create(): on the check path create() (a
// reflective walk over the schema per message) was the server's largest single cost. Tests hold
// each literal equal to what create() makes (server-convert.test.ts).

export function checkResponseToProto(requestId: bigint, d: Decision): CheckResponse {
  return {
    $typeName: "agentsh.v1.CheckResponse",
    requestId,
    decision: DECISION[d.decision],
    rule: d.rule,
    pattern: d.pattern,
    policyVersion: d.policyVersion,
    mitreTechnique: d.mitre,
    message: d.message,
    cacheTtlMs: d.cacheTtlMs,
    mode: d.mode === "monitor" ? PMode.MONITOR : PMode.ENFORCE,
    enforcedDecision: DECISION[d.enforcedDecision],
    decidedSide: d.decidedSide ?? "",
    canonicalPath: d.canonicalPath,
    redirectPath: d.redirectPath ?? "",
    approvalId: "",
    approvalTimeoutMs: d.approvalTimeoutMs ?? 0,
    notify: d.notify,
  };
}

export function checkErrorToProto(requestId: bigint, code: string, message: string): CheckError {
  return { $typeName: "agentsh.v1.CheckError", requestId, code, message };
}

/** A CheckStream message: one answer, one error, or a batch (fill `responses` and `errors`). */
export function streamResponse(
  result: CheckStreamResponse["result"] = { case: undefined },
): CheckStreamResponse {
  return { $typeName: "agentsh.v1.CheckStreamResponse", result, responses: [], errors: [] };
}

export function versionToProto(v: PolicyVersion): WatchPolicyResponse {
  return create(WatchPolicyResponseSchema, {
    version: v.version,
    previousVersion: v.previousVersion,
    name: v.name,
    loadedAtMs: BigInt(v.loadedAtMs),
    changedPrefixes: [],
    mode: v.mode === "monitor" ? PMode.MONITOR : PMode.ENFORCE,
  });
}
