// The relay: one policy decision for one driver question, within a deadline budget that always ends
// before the driver gives up. Order: server (stream, then one retry on another replica by unary when
// the budget allows) -> stale answer (stale-if-error window) -> fail mode. A circuit breaker skips
// the server while it is down and probes it in the background.

import {
  AwaitApprovalRequestSchema,
  type AwaitApprovalResponse,
  type CheckRequest,
  type CheckResponse,
  CheckResponseSchema,
  Decision,
  health,
} from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import type { Span } from "@opentelemetry/api";
import { brokerInstruments } from "../telemetry-metrics.js";
import { APPROVAL_SERVICE, POLICY_SERVICE, RpcCall } from "../telemetry-trace.js";
import { Breaker, type BreakerState, type BreakerStats } from "./relay-breaker.js";
import { fromGrpc, type RelayError } from "./relay-error.js";
import { type PolicyChannel, unary } from "./relay-grpc.js";
import { StaleStore } from "./relay-stale.js";
import { CheckStreams } from "./relay-streams.js";

export type FailModeName = "open" | "closed";
export type DecisionSource = "server" | "stale" | "fail_mode";

export interface RelayOptions {
  channel: PolicyChannel;
  failMode: FailModeName;
  /** Check streams kept open (spread over replicas by round robin). */
  streams: number;
  breakerThreshold: number;
  probeIntervalMs: number;
  /** 0 disables stale-if-error. */
  staleIfErrorMs: number;
  /** A check stream is replaced after this long (when idle), so load rebalances over replicas. */
  streamMaxAgeMs?: number;
  /** No retry when less than this remains of the budget. */
  minRetryMs?: number;
  onBreakerChange?: (state: BreakerState) => void;
}

export interface RelayDecision {
  response: CheckResponse;
  source: DecisionSource;
  /** Why the server did not decide (stale and fail-mode decisions). */
  reason?: string;
  attempts: number;
}

export interface RelayStats {
  server: number;
  stale: number;
  failMode: number;
  invalid: number;
  retries: number;
  errors: Record<string, number>;
  breaker: BreakerStats;
  inFlight: number;
}

export class Relay {
  private readonly streams: CheckStreams;
  private readonly breaker: Breaker;
  readonly stale: StaleStore;
  private readonly counts = { server: 0, stale: 0, failMode: 0, invalid: 0, retries: 0 };
  private readonly errors: Record<string, number> = {};

  constructor(private readonly opts: RelayOptions) {
    this.streams = new CheckStreams(opts.channel.policy, opts.streams, opts.streamMaxAgeMs);
    this.stale = new StaleStore(opts.staleIfErrorMs);
    this.breaker = new Breaker(
      opts.breakerThreshold,
      opts.probeIntervalMs,
      () => this.probe(),
      opts.onBreakerChange,
    );
  }

  get failMode(): FailModeName {
    return this.opts.failMode;
  }

  get breakerState(): BreakerState {
    return this.breaker.state;
  }

  stats(): RelayStats {
    return {
      ...this.counts,
      errors: { ...this.errors },
      breaker: this.breaker.stats(),
      inFlight: this.streams.inFlight(),
    };
  }

  /**
   * Decides `req` by `deadline` (epoch ms). `key` identifies the question for stale-if-error;
   * `span` (the decision's) parents the RPC spans.
   */
  async check(req: CheckRequest, key: string, deadline: number, span?: Span): Promise<RelayDecision> {
    if (this.breaker.state === "open")
      return this.fallback(key, "policy server unreachable (breaker open)", 0);
    let attempts = 0;
    let last: RelayError;
    let rpc = new RpcCall(POLICY_SERVICE, "CheckStream", span, false);
    try {
      attempts++;
      rpc.injectInto(req);
      const res = await this.streams.check(req, deadline);
      rpc.end();
      return this.fromServer(key, res, attempts);
    } catch (e) {
      rpc.end(e);
      last = fromGrpc(e);
    }
    if (last.code !== "invalid" && last.retryable && deadline - Date.now() >= (this.opts.minRetryMs ?? 20)) {
      this.counts.retries++;
      rpc = new RpcCall(POLICY_SERVICE, "Check", span);
      try {
        attempts++;
        rpc.injectInto(req);
        const res = await unary<CheckRequest, CheckResponse>(
          this.opts.channel.policy,
          "check",
          req,
          deadline,
          rpc.metadata(),
        );
        rpc.end();
        return this.fromServer(key, res, attempts);
      } catch (e) {
        rpc.end(e);
        last = fromGrpc(e);
      }
    }
    this.errors[last.code] = (this.errors[last.code] ?? 0) + 1;
    if (last.code === "invalid") {
      // The request itself is wrong: not the server's fault, and not something to allow.
      this.counts.invalid++;
      return {
        response: create(CheckResponseSchema, {
          decision: Decision.DENY,
          rule: "broker:invalid-request",
          message: last.message,
          cacheTtlMs: 0,
        }),
        source: "server",
        reason: last.message,
        attempts,
      };
    }
    this.breaker.failure();
    return this.fallback(key, `${last.code}: ${last.message}`, attempts);
  }

  /** Waits for a human's answer to an approval, at most until `deadline`. */
  async awaitApproval(
    approvalId: string,
    deadline: number,
    span?: Span,
  ): Promise<AwaitApprovalResponse | null> {
    const timeoutMs = Math.max(0, deadline - Date.now());
    const pending = brokerInstruments().approvalsPending;
    const rpc = new RpcCall(APPROVAL_SERVICE, "AwaitApproval", span);
    pending.add(1);
    try {
      const request = create(AwaitApprovalRequestSchema, { approvalId, timeoutMs });
      const res = await unary<typeof request, AwaitApprovalResponse>(
        this.opts.channel.approval,
        "awaitApproval",
        request,
        deadline,
        rpc.metadata(),
      );
      rpc.end();
      return res;
    } catch (e) {
      rpc.end(e);
      return null;
    } finally {
      pending.add(-1);
    }
  }

  /** A policy change: answers of the old version may not be reused. */
  policyChanged(): void {
    this.stale.clear();
  }

  close(): void {
    this.breaker.close();
    this.streams.close();
  }

  private fromServer(key: string, res: CheckResponse, attempts: number): RelayDecision {
    this.breaker.success();
    this.counts.server++;
    this.stale.put(key, res);
    return { response: res, source: "server", attempts };
  }

  private fallback(key: string, reason: string, attempts: number): RelayDecision {
    const stale = this.stale.get(key);
    if (stale) {
      this.counts.stale++;
      return { response: { ...stale, cacheTtlMs: 0 }, source: "stale", reason, attempts };
    }
    this.counts.failMode++;
    const open = this.opts.failMode === "open";
    return {
      response: create(CheckResponseSchema, {
        decision: open ? Decision.ALLOW : Decision.DENY,
        rule: `fail-mode:${this.opts.failMode}`,
        message: reason,
        cacheTtlMs: 0,
      }),
      source: "fail_mode",
      reason,
      attempts,
    };
  }

  private async probe(): Promise<boolean> {
    try {
      const res = await unary<health.HealthCheckRequest, health.HealthCheckResponse>(
        this.opts.channel.health,
        "check",
        create(health.HealthCheckRequestSchema, { service: "" }),
        Date.now() + Math.min(1000, this.opts.probeIntervalMs),
      );
      return res.status === health.HealthCheckResponse_ServingStatus.SERVING;
    } catch {
      return false;
    }
  }
}
