/**
 * Approvals: operations whose decision is `approve`, held until a human answers or they expire.
 * The service (server-approvals.ts) talks to an `ApprovalStore`; `MemoryApprovalStore` is the
 * embedded one. The interface is asynchronous and keyed so that a PostgreSQL store can share
 * approvals between replicas (a broker may await on another replica than the one that checked):
 * - ids are random UUIDs, unique across replicas;
 * - `open` deduplicates on `key` among pending approvals (PostgreSQL: a unique partial index on
 *   key WHERE state = 'pending', INSERT ... ON CONFLICT DO NOTHING then SELECT);
 * - `resolve` is a compare-and-set from pending (UPDATE ... WHERE state = 'pending' RETURNING);
 * - `wait` wakes on resolution (PostgreSQL: LISTEN/NOTIFY on the id, waiters kept per process);
 * - expiry is a timestamp, so every replica agrees on it without a sweeper.
 * Bounds: pending approvals (in total and per session) and waiters; past them `open` and `wait`
 * refuse instead of growing.
 */
import { randomUUID } from "node:crypto";
import type { Kind } from "./path-types.js";
import { upcase } from "./path-upcase.js";
import type { Operation } from "./policy-types.js";

export interface ApprovalSession {
  token: bigint;
  workspace: string;
  userSid: string;
  userProfile: string;
  agent: string;
  host: string;
}

/** What the check that decided `approve` knew. */
export interface NewApproval {
  kind: Kind;
  operation: Operation;
  /** Canonical path (display form) the decision was made for. */
  path: string;
  /** Renames: canonical destination ("" otherwise). */
  renameDest: string;
  rule: string;
  message: string;
  session: ApprovalSession;
  pid: number;
  /** How long a human may take (the rule's timeout). */
  timeoutMs: number;
  policyVersion: string;
}

export type ApprovalState = "pending" | "allowed" | "denied" | "expired";

export interface Approval extends NewApproval {
  id: string;
  /** Identical pending requests share one approval: session, kind, operation, paths. */
  key: string;
  createdAtMs: number;
  expiresAtMs: number;
  state: ApprovalState;
  resolvedBy: string;
  reason: string;
  resolvedAtMs: number;
}

export type OpenResult =
  | { ok: true; approval: Approval; created: boolean }
  | { ok: false; error: "too_many_pending" | "too_many_pending_for_session"; limit: number };

export type ResolveResult =
  | { ok: true; approval: Approval; changed: boolean }
  | { ok: false; error: "not_found" }
  | { ok: false; error: "expired" | "already_resolved"; approval: Approval };

export type WaitResult =
  | { ok: true; approval: Approval }
  | { ok: false; error: "not_found" | "too_many_waiters" | "closed" };

export interface ApprovalStore {
  /** Opens an approval, or returns the pending one with the same key (created: false). */
  open(req: NewApproval): Promise<OpenResult>;
  /** The approval (pending ones past their expiry read as expired), or undefined. */
  get(id: string): Promise<Approval | undefined>;
  /** Allows or denies a pending approval and wakes its waiters. Same answer again: unchanged. */
  resolve(id: string, allow: boolean, resolvedBy: string, reason: string): Promise<ResolveResult>;
  /** Pending approvals, oldest first. */
  listPending(): Promise<Approval[]>;
  /**
   * Waits until the approval is no longer pending, `untilMs` passes (then returns it as it is,
   * possibly still pending) or `signal` aborts.
   */
  wait(id: string, untilMs: number, signal?: AbortSignal): Promise<WaitResult>;
  /** Releases waiters (they get "closed") and timers. */
  close(): Promise<void>;
}

export interface MemoryStoreOptions {
  /** Pending approvals in total (default 10000). */
  maxPending?: number | undefined;
  /** Pending approvals of one session (default 1000). */
  maxPendingPerSession?: number | undefined;
  /** Concurrent waiters in total (default 10000). */
  maxWaiters?: number | undefined;
  /** How long answered and expired approvals stay readable (default 10 min; at most maxPending kept). */
  retainMs?: number | undefined;
  now?: (() => number) | undefined;
}

export function approvalKey(a: NewApproval): string {
  const s = a.session;
  // Windows' upcase (1:1 per code unit): JavaScript's toUpperCase would merge names Windows keeps
  // apart ("STRASSE" and "STRAßE"), and approving one must not approve the other.
  return [
    upcase(s.host),
    s.token,
    upcase(s.userSid),
    upcase(s.workspace),
    a.kind,
    a.operation,
    upcase(a.path),
    upcase(a.renameDest),
  ].join("\0");
}

/** `approval.state` as of `now`: pending approvals past their expiry are expired. */
export function stateAt(a: Approval, now: number): ApprovalState {
  return a.state === "pending" && now >= a.expiresAtMs ? "expired" : a.state;
}

interface Waiter {
  id: string;
  wake: (r: WaitResult) => void;
}

export class MemoryApprovalStore implements ApprovalStore {
  private readonly byId = new Map<string, Approval>();
  private readonly pendingByKey = new Map<string, Approval>();
  private readonly pendingBySession = new Map<string, number>();
  /** Finished approvals in the order they finished, for retention. */
  private readonly done = new Map<string, number>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private waiterCount = 0;
  private readonly maxPending: number;
  private readonly maxPerSession: number;
  private readonly maxWaiters: number;
  private readonly retainMs: number;
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(opts: MemoryStoreOptions = {}) {
    this.maxPending = opts.maxPending ?? 10_000;
    this.maxPerSession = opts.maxPendingPerSession ?? 1000;
    this.maxWaiters = opts.maxWaiters ?? 10_000;
    this.retainMs = opts.retainMs ?? 600_000;
    this.now = opts.now ?? Date.now;
  }

  get pendingCount(): number {
    return this.pendingByKey.size;
  }

  get waiting(): number {
    return this.waiterCount;
  }

  async open(req: NewApproval): Promise<OpenResult> {
    const now = this.now();
    this.expireDue(now);
    const key = approvalKey(req);
    const existing = this.pendingByKey.get(key);
    if (existing) return { ok: true, approval: existing, created: false };
    if (this.pendingByKey.size >= this.maxPending)
      return { ok: false, error: "too_many_pending", limit: this.maxPending };
    const sk = sessionKey(req);
    const n = this.pendingBySession.get(sk) ?? 0;
    if (n >= this.maxPerSession)
      return { ok: false, error: "too_many_pending_for_session", limit: this.maxPerSession };
    const a: Approval = {
      ...req,
      session: { ...req.session },
      id: randomUUID(),
      key,
      createdAtMs: now,
      expiresAtMs: now + req.timeoutMs,
      state: "pending",
      resolvedBy: "",
      reason: "",
      resolvedAtMs: 0,
    };
    this.byId.set(a.id, a);
    this.pendingByKey.set(key, a);
    this.pendingBySession.set(sk, n + 1);
    this.schedule();
    return { ok: true, approval: a, created: true };
  }

  async get(id: string): Promise<Approval | undefined> {
    const a = this.byId.get(id);
    if (a && a.state === "pending" && this.now() >= a.expiresAtMs)
      this.finish(a, "expired", "", "", a.expiresAtMs);
    return a;
  }

  async resolve(id: string, allow: boolean, resolvedBy: string, reason: string): Promise<ResolveResult> {
    const a = await this.get(id);
    if (!a) return { ok: false, error: "not_found" };
    const state = allow ? "allowed" : "denied";
    if (a.state === "expired") return { ok: false, error: "expired", approval: a };
    if (a.state !== "pending") {
      return a.state === state
        ? { ok: true, approval: a, changed: false }
        : { ok: false, error: "already_resolved", approval: a };
    }
    this.finish(a, state, resolvedBy, reason, this.now());
    return { ok: true, approval: a, changed: true };
  }

  async listPending(): Promise<Approval[]> {
    this.expireDue(this.now());
    return [...this.pendingByKey.values()].sort((x, y) => x.createdAtMs - y.createdAtMs);
  }

  wait(id: string, untilMs: number, signal?: AbortSignal): Promise<WaitResult> {
    if (this.closed) return Promise.resolve({ ok: false, error: "closed" });
    const a = this.byId.get(id);
    if (!a) return Promise.resolve({ ok: false, error: "not_found" });
    const now = this.now();
    if (a.state === "pending" && now >= a.expiresAtMs) this.finish(a, "expired", "", "", a.expiresAtMs);
    if (a.state !== "pending" || now >= untilMs || signal?.aborted)
      return Promise.resolve({ ok: true, approval: a });
    if (this.waiterCount >= this.maxWaiters) return Promise.resolve({ ok: false, error: "too_many_waiters" });
    return new Promise<WaitResult>((resolve) => {
      let set = this.waiters.get(id);
      if (!set) {
        set = new Set();
        this.waiters.set(id, set);
      }
      const w: Waiter = {
        id,
        wake: (r) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          if (set.delete(w)) this.waiterCount--;
          if (set.size === 0 && this.waiters.get(id) === set) this.waiters.delete(id);
          resolve(r);
        },
      };
      const onAbort = (): void => w.wake({ ok: true, approval: a });
      // Past the approval's expiry the waiter wakes and finds it expired. When the wait ends at the
      // expiry, the timer firing is the expiry (timers may fire a millisecond before Date.now()
      // reaches it), so it does not ask the clock again.
      const endsAtExpiry = untilMs >= a.expiresAtMs;
      const timer = setTimeout(
        () => {
          if (a.state === "pending" && (endsAtExpiry || this.now() >= a.expiresAtMs))
            this.finish(a, "expired", "", "", a.expiresAtMs);
          else w.wake({ ok: true, approval: a });
        },
        Math.max(0, Math.min(untilMs, a.expiresAtMs) - now),
      );
      set.add(w);
      this.waiterCount++;
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const set of [...this.waiters.values()])
      for (const w of [...set]) w.wake({ ok: false, error: "closed" });
  }

  private finish(a: Approval, state: ApprovalState, by: string, reason: string, at: number): void {
    if (a.state !== "pending") return;
    a.state = state;
    a.resolvedBy = by;
    a.reason = reason;
    a.resolvedAtMs = at;
    if (this.pendingByKey.get(a.key) === a) this.pendingByKey.delete(a.key);
    const sk = sessionKey(a);
    const n = (this.pendingBySession.get(sk) ?? 1) - 1;
    if (n > 0) this.pendingBySession.set(sk, n);
    else this.pendingBySession.delete(sk);
    this.done.set(a.id, at);
    const set = this.waiters.get(a.id);
    if (set) for (const w of [...set]) w.wake({ ok: true, approval: a });
    this.trimDone(at);
  }

  /** Expires due pending approvals and forgets old finished ones. */
  private expireDue(now: number): void {
    for (const a of this.pendingByKey.values()) {
      if (now >= a.expiresAtMs) this.finish(a, "expired", "", "", a.expiresAtMs);
    }
    this.trimDone(now);
  }

  private trimDone(now: number): void {
    for (const [id, at] of this.done) {
      if (at > now - this.retainMs && this.done.size <= this.maxPending) break;
      this.done.delete(id);
      this.byId.delete(id);
    }
  }

  /** A sweep while approvals are pending, so expiry and retention do not wait for traffic. */
  private schedule(): void {
    if (this.sweeper || this.closed) return;
    this.sweeper = setInterval(() => {
      this.expireDue(this.now());
      if (this.pendingByKey.size === 0 && this.done.size === 0) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
      }
    }, 1000);
    this.sweeper.unref();
  }
}

function sessionKey(a: NewApproval): string {
  return `${upcase(a.session.host)}\0${a.session.token}\0${upcase(a.session.userSid)}`;
}
