// From a driver question to a driver answer: map the kernel's request to a policy check (drive
// letters for volumes, the session's context, the registry rename destination), ask the relay within
// the budget, wait for a human when the answer is "approve", and turn the decision into the reply the
// driver caches (or not).

import {
  type CheckRequest,
  type CheckResponse,
  Decision,
  Kind,
  Operation,
  type SessionContext,
} from "@agentsh/proto";
import type { Span } from "@opentelemetry/api";
import type { DriverRequest, ReplyFields } from "./port/port-client.js";
import { replyFor } from "./port/port-client.js";
import { FileOp, MsgType, RegOp } from "./port/protocol.js";
import type { DecisionSource, Relay } from "./relay/relay.js";
import type { Session, SessionStore } from "./session/session-store.js";
import { decisionDone, decisionStarted } from "./telemetry-decision.js";
import type { VolumeMap } from "./volumes.js";

const FILE_OPS: Record<number, Operation> = {
  [FileOp.CREATE]: Operation.CREATE,
  [FileOp.READ]: Operation.READ,
  [FileOp.WRITE]: Operation.WRITE,
  [FileOp.DELETE]: Operation.DELETE,
  [FileOp.RENAME]: Operation.RENAME,
  // A hard link is judged like a rename: the source may not gain a name the policy forbids, and
  // the destination must be creatable (driver_operation tells the server it was a link).
  [FileOp.LINK]: Operation.RENAME,
};

const REG_OPS: Record<number, Operation> = {
  [RegOp.CREATE_KEY]: Operation.CREATE,
  [RegOp.OPEN_KEY]: Operation.READ,
  [RegOp.SET_VALUE]: Operation.WRITE,
  [RegOp.DELETE_KEY]: Operation.DELETE,
  [RegOp.DELETE_VALUE]: Operation.DELETE,
  [RegOp.RENAME_KEY]: Operation.RENAME,
  [RegOp.QUERY_VALUE]: Operation.READ,
};

/** A path still named by its device (no drive letter for it): \Device\HarddiskVolume9\... */
const DEVICE_PATH = /^\\device\\/i;

export interface DecisionRecord {
  request: DriverRequest;
  check: CheckRequest;
  response: CheckResponse;
  source: DecisionSource;
  reason?: string | undefined;
  reply: ReplyFields;
  latencyMs: number;
  session?: Session | undefined;
  /** Approval outcome when the decision was "approve". */
  approval?: "approved" | "denied" | "timed_out" | undefined;
  /** The decision's trace span (ended; non-recording when tracing is off). */
  span?: Span | undefined;
}

export interface DeciderOptions {
  relay: Relay;
  sessions: SessionStore;
  volumes: VolumeMap;
  /** Per-request deadline budget, shorter than the driver's timeout. */
  budgetMs: number;
  host: string;
  /** The policy version the broker last saw announced ("" before the first announcement). */
  currentPolicyVersion?: () => string;
  onDecision?: (rec: DecisionRecord) => void;
}

export class Decider {
  constructor(private readonly opts: DeciderOptions) {}

  /** The check for a driver request: every field of the message written out (what create() would
   * produce; create() reflects on the schema at every call, this is one object literal). */
  toCheck(req: DriverRequest, session: Session | undefined): CheckRequest {
    const ctx: SessionContext = {
      $typeName: "agentsh.v1.SessionContext",
      token: req.sessionToken,
      workspace: session?.workspace ?? "",
      userSid: session?.userSid ?? "",
      userProfile: session?.userProfile ?? "",
      agent: session?.agent ?? "",
      host: this.opts.host,
    };
    if (req.type === MsgType.POLICY_CHECK_FILE) {
      const path = this.opts.volumes.toDos(req.path);
      const renameDest = req.renameDest ? this.opts.volumes.toDos(req.renameDest) : "";
      // The server needs the volume map only for a path still named by its device.
      const unmapped = DEVICE_PATH.test(path) || DEVICE_PATH.test(renameDest);
      return {
        $typeName: "agentsh.v1.CheckRequest",
        requestId: 0n,
        kind: Kind.FILE,
        operation: FILE_OPS[req.operation] ?? Operation.UNSPECIFIED,
        path,
        renameDest,
        valueName: "",
        session: ctx,
        pid: req.processId,
        volumes: unmapped
          ? this.opts.volumes.list().map((v) => ({ $typeName: "agentsh.v1.VolumeMapping", ...v }))
          : [],
        driverOperation: req.operation,
        desiredAccess: req.desiredAccess,
        createDisposition: req.createDisposition,
        flags: req.flags,
        valueType: 0,
        traceContext: {},
        traceparent: "",
        tracestate: "",
      };
    }
    const cut = req.keyPath.lastIndexOf("\\");
    return {
      $typeName: "agentsh.v1.CheckRequest",
      requestId: 0n,
      kind: Kind.REGISTRY,
      operation: REG_OPS[req.operation] ?? Operation.UNSPECIFIED,
      path: req.keyPath,
      renameDest:
        req.operation === RegOp.RENAME_KEY && cut > 0 ? `${req.keyPath.slice(0, cut)}\\${req.newName}` : "",
      valueName: req.valueName,
      session: ctx,
      pid: req.processId,
      volumes: [],
      driverOperation: req.operation,
      desiredAccess: 0,
      createDisposition: 0,
      flags: 0,
      valueType: req.valueType,
      traceContext: {},
      traceparent: "",
      tracestate: "",
    };
  }

  async answer(req: DriverRequest): Promise<ReplyFields> {
    const started = performance.now();
    const deadline = Date.now() + this.opts.budgetMs;
    const session = this.opts.sessions.get(req.sessionToken);
    const check = this.toCheck(req, session);
    const key = `${req.sessionToken}|${check.kind}|${check.operation}|${check.path.toLowerCase()}|${check.renameDest.toLowerCase()}|${check.valueName}`;
    const span = decisionStarted(check);
    const d = await this.opts.relay.check(check, key, deadline, span);
    // An answer from a version other than the announced one may be in flight across a policy
    // change and its cache flush: use it once, never cache it.
    const announced = this.opts.currentPolicyVersion?.() ?? "";
    if (announced && d.response.policyVersion && d.response.policyVersion !== announced)
      d.response.cacheTtlMs = 0;
    let reply: ReplyFields;
    let approval: DecisionRecord["approval"];
    switch (d.response.decision) {
      case Decision.ALLOW:
        reply = replyFor(true, d.response.cacheTtlMs);
        break;
      case Decision.AUDIT:
        reply = replyFor(true, 0); // every occurrence must reach the audit log
        break;
      case Decision.APPROVE: {
        const a = d.response.approvalId
          ? await this.opts.relay.awaitApproval(d.response.approvalId, deadline, span)
          : null;
        const ok = a?.decision === Decision.ALLOW;
        approval = ok ? "approved" : a && !a.timedOut ? "denied" : "timed_out";
        reply = replyFor(ok, 0); // an approval is for this operation only
        break;
      }
      default:
        // DENY, REDIRECT (the driver cannot redirect yet: the operation is refused), UNSPECIFIED.
        reply = replyFor(false, d.response.decision === Decision.DENY ? d.response.cacheTtlMs : 0);
    }
    if (session) {
      const c = session.counters;
      if (d.source === "fail_mode") c.failMode++;
      else if (d.source === "stale") c.stale++;
      if (d.response.decision === Decision.APPROVE) c.approve++;
      else if (d.response.decision === Decision.AUDIT) c.audit++;
      if (reply.decision === 0) c.allow++;
      else c.deny++;
    }
    const rec: DecisionRecord = {
      request: req,
      check,
      response: d.response,
      source: d.source,
      reason: d.reason,
      reply,
      latencyMs: performance.now() - started,
      session,
      approval,
      span,
    };
    decisionDone(rec);
    this.opts.onDecision?.(rec);
    return reply;
  }
}
