/**
 * agentsh.v1.ApprovalService, and the step of Check that turns an `approve` decision into an
 * approval a broker can await. Approvals live in an ApprovalStore (approval-store.ts).
 * - A check decided `approve` opens an approval (or joins the pending one for the same session,
 *   kind, operation and canonical paths) and answers with its id and the time left. When a bound
 *   is reached the check is answered DENY instead (nothing would ever answer it).
 * - AwaitApproval waits until the approval is answered or min(timeout_ms, expiry) passes; then
 *   DENY with timed_out. Unknown id: NOT_FOUND. Shutdown: UNAVAILABLE (await on another replica).
 * - ResolveApproval answers a pending approval (ALLOW or DENY) and wakes every waiter; answering
 *   again with the same decision is a no-op, with the other one FAILED_PRECONDITION, as is
 *   answering an expired approval.
 * - ListApprovals lists the pending ones, oldest first.
 */
import {
  ApprovalSchema,
  type ApprovalService,
  type CheckRequest,
  type CheckResponse,
  type Approval as PApproval,
  Decision as PDecision,
  Kind as PKind,
  Operation as POperation,
} from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Approval, ApprovalStore } from "./approval-store.js";
import { stateAt } from "./approval-store.js";
import type { CheckInput, Decision } from "./engine-types.js";
import type { Logger } from "./server-store.js";

const MAX_ID = 128;
const MAX_BY = 256;
const MAX_REASON = 4096;
const PKIND = { file: PKind.FILE, registry: PKind.REGISTRY } as const;
const POP = {
  read: POperation.READ,
  write: POperation.WRITE,
  create: POperation.CREATE,
  delete: POperation.DELETE,
  rename: POperation.RENAME,
} as const;

export interface ApprovalsContext {
  store: ApprovalStore;
  log: Logger;
  /** Aborted on shutdown: waits end with UNAVAILABLE. */
  closing: AbortSignal;
}

/**
 * Opens (or joins) the approval for a check decided `approve` and fills in approval_id and the
 * time left; answers DENY when no approval can be opened.
 */
export async function attachApproval(
  ctx: ApprovalsContext,
  req: CheckRequest,
  input: CheckInput,
  d: Decision,
  res: CheckResponse,
): Promise<CheckResponse> {
  const s = req.session;
  const rename = d.renamePaths;
  const path = rename ? rename.source : d.canonicalPath;
  const dest = rename ? rename.destination : "";
  const r = await ctx.store.open({
    kind: input.kind,
    operation: input.operation,
    path,
    renameDest: dest,
    rule: d.rule,
    message: rename && !d.message.includes(dest) ? `${d.message} (rename to ${dest})` : d.message,
    session: {
      token: s?.token ?? 0n,
      workspace: s?.workspace ?? "",
      userSid: s?.userSid ?? "",
      userProfile: s?.userProfile ?? "",
      agent: s?.agent ?? "",
      host: s?.host ?? "",
    },
    pid: req.pid,
    timeoutMs: d.approvalTimeoutMs ?? 0,
    policyVersion: d.policyVersion,
  });
  if (!r.ok) {
    const why =
      r.error === "too_many_pending"
        ? `${r.limit} approvals are already pending`
        : `this session already has ${r.limit} pending approvals`;
    ctx.log.warn("approval refused", { error: r.error, limit: r.limit, rule: d.rule, path });
    res.decision = PDecision.DENY;
    res.enforcedDecision = PDecision.DENY;
    res.cacheTtlMs = 0;
    res.approvalTimeoutMs = 0;
    res.message = `${d.message} (denied: ${why})`;
    return res;
  }
  const a = r.approval;
  res.approvalId = a.id;
  // A joined approval has less time left than the rule gives a new one.
  res.approvalTimeoutMs = r.created ? a.timeoutMs : Math.max(1, a.expiresAtMs - Date.now());
  if (r.created) {
    ctx.log.info("approval requested", {
      id: a.id,
      rule: a.rule,
      kind: a.kind,
      operation: a.operation,
      path: a.path,
      ...(a.renameDest ? { rename_dest: a.renameDest } : {}),
      message: a.message,
      host: a.session.host,
      session: a.session.token.toString(),
      pid: a.pid,
      expires_at: new Date(a.expiresAtMs).toISOString(),
    });
  }
  return res;
}

export function approvalToProto(a: Approval): PApproval {
  return create(ApprovalSchema, {
    id: a.id,
    kind: PKIND[a.kind],
    operation: POP[a.operation],
    path: a.path,
    rule: a.rule,
    message: a.message,
    session: a.session,
    pid: a.pid,
    createdAtMs: BigInt(a.createdAtMs),
    expiresAtMs: BigInt(a.expiresAtMs),
  });
}

function invalid(field: string, why: string): ConnectError {
  return new ConnectError(`${field} ${why}`, Code.InvalidArgument);
}

function approvalId(id: string): string {
  if (id === "") throw invalid("approval_id", "is required");
  if (id.length > MAX_ID) throw invalid("approval_id", `longer than ${MAX_ID} characters`);
  return id;
}

export function approvalService(ctx: ApprovalsContext): ServiceImpl<typeof ApprovalService> {
  const { store, log } = ctx;
  return {
    async awaitApproval(req, hctx) {
      const id = approvalId(req.approvalId);
      const a = await store.get(id);
      if (!a) throw new ConnectError(`approval ${id} not found`, Code.NotFound);
      const start = Date.now();
      const until = req.timeoutMs > 0 ? Math.min(start + req.timeoutMs, a.expiresAtMs) : a.expiresAtMs;
      const r = await store.wait(id, until, AbortSignal.any([hctx.signal, ctx.closing]));
      if (ctx.closing.aborted || (!r.ok && r.error === "closed"))
        throw new ConnectError("policy server is shutting down", Code.Unavailable);
      if (!r.ok) {
        if (r.error === "not_found") throw new ConnectError(`approval ${id} not found`, Code.NotFound);
        throw new ConnectError("too many waiting calls", Code.ResourceExhausted);
      }
      const b = r.approval;
      switch (stateAt(b, Date.now())) {
        case "allowed":
          return { decision: PDecision.ALLOW, timedOut: false, resolvedBy: b.resolvedBy, reason: b.reason };
        case "denied":
          return { decision: PDecision.DENY, timedOut: false, resolvedBy: b.resolvedBy, reason: b.reason };
        case "expired":
          return {
            decision: PDecision.DENY,
            timedOut: true,
            resolvedBy: "",
            reason: "no answer before the approval expired",
          };
        default:
          return {
            decision: PDecision.DENY,
            timedOut: true,
            resolvedBy: "",
            reason: `no answer within ${Date.now() - start} ms (the approval is still pending)`,
          };
      }
    },

    async resolveApproval(req) {
      const id = approvalId(req.approvalId);
      if (req.decision !== PDecision.ALLOW && req.decision !== PDecision.DENY)
        throw invalid("decision", "must be DECISION_ALLOW or DECISION_DENY");
      const by = req.resolvedBy.trim();
      if (by === "") throw invalid("resolved_by", "is required (who answers)");
      if (by.length > MAX_BY) throw invalid("resolved_by", `longer than ${MAX_BY} characters`);
      if (req.reason.length > MAX_REASON) throw invalid("reason", `longer than ${MAX_REASON} characters`);
      const allow = req.decision === PDecision.ALLOW;
      const r = await store.resolve(id, allow, by, req.reason);
      if (!r.ok) {
        if (r.error === "not_found") throw new ConnectError(`approval ${id} not found`, Code.NotFound);
        const a = r.approval;
        const what =
          r.error === "expired"
            ? "expired"
            : `was already ${a.state} by ${a.resolvedBy} at ${new Date(a.resolvedAtMs).toISOString()}`;
        throw new ConnectError(`approval ${id} ${what}`, Code.FailedPrecondition);
      }
      if (r.changed) {
        log.info("approval resolved", {
          id,
          decision: allow ? "allow" : "deny",
          resolved_by: by,
          reason: req.reason,
          rule: r.approval.rule,
          path: r.approval.path,
          waited_ms: r.approval.resolvedAtMs - r.approval.createdAtMs,
        });
      }
      return { approval: approvalToProto(r.approval) };
    },

    async listApprovals() {
      return { approvals: (await store.listPending()).map(approvalToProto) };
    },
  };
}
