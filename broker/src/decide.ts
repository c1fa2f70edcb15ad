// From a driver question to a driver answer: map the kernel's request to a policy check (drive
// letters for volumes, the session's context, the registry rename destination), ask the relay within
// the budget, wait for a human when the answer is "approve", and turn the decision into the reply the
// driver caches (or not).

import {
  type CheckRequest,
  type CheckResponse,
  CheckResponseSchema,
  Decision,
  Kind,
  Operation,
  type SessionContext,
} from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import type { Span } from "@opentelemetry/api";
import { FILE_OPS, REG_OPS } from "./driver-ops.js";
import type { DecisionEvent } from "./port/codec.js";
import type { DriverRequest, ReplyFields } from "./port/port-client.js";
import { replyFor } from "./port/port-client.js";
import { DecisionEventSource, DecisionReason, Kind as DriverKind, MsgType, RegOp } from "./port/protocol.js";
import type { DecisionSource, Relay } from "./relay/relay.js";
import type { Session, SessionStore } from "./session/session-store.js";
import { decisionDone, decisionStarted } from "./telemetry-decision.js";
import type { VolumeMap } from "./volumes.js";

/** A path still named by its device (no drive letter for it): \Device\HarddiskVolume9\... */
const DEVICE_PATH = /^\\device\\/i;

/** Decisions the driver made alone and reported (MSG_DECISION_EVENT). */
export type DriverDecisionSource = "driver_cache" | "driver_fail_mode";

const REASONS: Record<number, string> = {
  [DecisionReason.CACHED]: "denied from the driver's cache",
  [DecisionReason.COLLAPSED]: "the answer of an identical query in flight",
  [DecisionReason.NO_CLIENT]: "no broker connected to the driver",
  [DecisionReason.FAILING]: "the driver is failing (broker unreachable), not the probe",
  [DecisionReason.QUERY_FAILED]: "the driver's query failed",
  [DecisionReason.WAIT_TIMEOUT]: "an identical query in flight did not answer in time",
  [DecisionReason.UNDECIDABLE]: "the driver could not build the query",
};

export interface DecisionRecord {
  request: DriverRequest;
  check: CheckRequest;
  response: CheckResponse;
  source: DecisionSource | DriverDecisionSource;
  reason?: string | undefined;
  reply: ReplyFields;
  latencyMs: number;
  session?: Session | undefined;
  /** Approval outcome when the decision was "approve". */
  approval?: "approved" | "denied" | "timed_out" | undefined;
  /** The decision's trace span (ended; non-recording when tracing is off). */
  span?: Span | undefined;
  /** A decision the driver made alone: how many like it it left out before this one (rate limit). */
  suppressed?: number | undefined;
}

/** What the broker remembers of a denial it let the driver cache: the driver's report of a repeat
 * names only the operation, so the rule and version come from here. */
interface CachedDeny {
  rule: string;
  policyVersion: string;
  mitreTechnique: string;
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
  /** How many denials to remember for the driver's reports of repeats (its cache's capacity; 0:
   * none, for a broker that does not take the reports). */
  cachedDenies?: number;
}

/** The key of a driver cache entry (session, kind, driver operation, strings folded as it folds). */
function driverKey(token: bigint, kind: number, op: number, a: string, b: string, c: string): string {
  return `${token}|${kind}|${op}|${a.toUpperCase()}|${b.toUpperCase()}|${c.toUpperCase()}`;
}

export class Decider {
  private readonly cachedDenies = new Map<string, CachedDeny>();

  constructor(private readonly opts: DeciderOptions) {}

  private keyOf(req: DriverRequest): string {
    return req.type === MsgType.POLICY_CHECK_FILE
      ? driverKey(req.sessionToken, DriverKind.FILE, req.operation, req.path, req.renameDest, "")
      : driverKey(
          req.sessionToken,
          DriverKind.REGISTRY,
          req.operation,
          req.keyPath,
          req.newName,
          req.valueName,
        );
  }

  /** (Re)inserts `deny` as the most recent, forgetting the least recent beyond the driver's capacity. */
  private remember(key: string, deny: CachedDeny): void {
    this.cachedDenies.delete(key);
    if (this.cachedDenies.size >= (this.opts.cachedDenies ?? 4096)) {
      const oldest = this.cachedDenies.keys().next();
      if (!oldest.done) this.cachedDenies.delete(oldest.value);
    }
    this.cachedDenies.set(key, deny);
  }

  /**
   * The record of a decision the driver made alone (MSG_DECISION_EVENT): a denial repeated from its
   * cache (with the rule and version of the denial the broker let it cache) or a fail-mode answer.
   * `null` for an event that names no file or registry operation.
   */
  driverDecision(ev: DecisionEvent): DecisionRecord | null {
    let request: DriverRequest;
    if (ev.kind === DriverKind.FILE) {
      request = {
        type: MsgType.POLICY_CHECK_FILE,
        requestId: 0n,
        sessionToken: ev.sessionToken,
        processId: ev.processId,
        threadId: ev.threadId,
        operation: ev.operation,
        createDisposition: 0,
        desiredAccess: 0,
        flags: 0,
        path: ev.path,
        renameDest: ev.string1,
        volume: ev.string2,
      };
    } else if (ev.kind === DriverKind.REGISTRY) {
      request = {
        type: MsgType.POLICY_CHECK_REGISTRY,
        requestId: 0n,
        sessionToken: ev.sessionToken,
        processId: ev.processId,
        threadId: ev.threadId,
        operation: ev.operation,
        valueType: 0,
        dataSize: 0,
        reserved: 0,
        keyPath: ev.path,
        valueName: ev.string1,
        newName: ev.string2,
      };
    } else return null;
    const session = this.opts.sessions.get(ev.sessionToken);
    const failMode = ev.source === DecisionEventSource.FAIL_MODE;
    let known: CachedDeny | undefined;
    if (!failMode) {
      const key = this.keyOf(request);
      known = this.cachedDenies.get(key);
      if (known) this.remember(key, known); // the driver's cache keeps what it hits: so does this memory
    }
    const deny = ev.decision !== 0;
    let reason = REASONS[ev.reason] ?? `reason ${ev.reason}`;
    if (ev.queryStatus !== 0)
      reason += ` (NTSTATUS 0x${(ev.queryStatus >>> 0).toString(16).padStart(8, "0")})`;
    const response = create(CheckResponseSchema, {
      decision: deny ? Decision.DENY : Decision.ALLOW,
      // the mode in force when the driver answered (what it enforced), not the broker's config now
      rule: failMode ? `fail-mode:${deny ? "closed" : "open"}` : (known?.rule ?? ""),
      message: reason,
      // no policy decided a fail-mode answer
      policyVersion: failMode ? "" : (known?.policyVersion ?? this.opts.currentPolicyVersion?.() ?? ""),
      mitreTechnique: known?.mitreTechnique ?? "",
    });
    return {
      request,
      check: this.toCheck(request, session),
      response,
      source: failMode ? "driver_fail_mode" : "driver_cache",
      reason,
      reply: replyFor(!deny, 0),
      latencyMs: 0,
      session,
      suppressed: ev.suppressed,
    };
  }

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
    // The driver reports the denials it repeats from its cache or hands to identical queries that
    // waited on this one: their record names this rule.
    if (reply.decision !== 0 && this.opts.cachedDenies !== 0) {
      const { rule, policyVersion, mitreTechnique } = d.response;
      this.remember(this.keyOf(req), { rule, policyVersion, mitreTechnique });
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
