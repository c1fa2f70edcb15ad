// The demo's live summary: what the driver saw (from the simulator's per-operation outcomes) and
// how the broker decided (from its decision hook), rendered as a table that updates in place.
import { Decision } from "@agentsh/proto";
import type { OpResult } from "../../../test/e2e/harness.js";
import type { DecisionRecord } from "../decide.js";

const RULE_WIDTH = 34;

/** Latencies in µs, kept compactly; percentiles by sorting a copy when rendering. */
class Samples {
  private values: number[] = [];
  add(v: number): void {
    if (this.values.length >= 200_000) this.values.splice(0, 100_000);
    this.values.push(v);
  }
  get count(): number {
    return this.values.length;
  }
  pct(p: number): number {
    if (!this.values.length) return Number.NaN;
    const s = [...this.values].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  }
}

export type Source = "server" | "driver cache" | "stale" | "fail mode (broker)" | "fail mode (driver)";

export class Summary {
  readonly startedAt = Date.now();
  ops = 0;
  errors = 0;
  readonly results = { allow: 0, deny: 0 };
  readonly brokerDecisions = { allow: 0, deny: 0, approve: 0, audit: 0 };
  readonly approvals = { approved: 0, denied: 0, timed_out: 0 };
  readonly sources: Record<Source, number> = {
    server: 0,
    "driver cache": 0,
    stale: 0,
    "fail mode (broker)": 0,
    "fail mode (driver)": 0,
  };
  readonly denyRules = new Map<string, number>();
  readonly cached = new Samples();
  readonly uncached = new Samples();
  readonly events: string[] = [];
  private window: Array<{ at: number; ops: number }> = [];
  /** Sources per second, for the outage scenario's timeline. */
  readonly timeline: Array<{
    second: number;
    server: number;
    cache: number;
    stale: number;
    failMode: number;
  }> = [];

  onResult(r: OpResult): void {
    if (r.error) {
      this.errors++;
      return;
    }
    this.ops++;
    this.results[r.result]++;
    if (r.source === "cache") {
      this.sources["driver cache"]++;
      this.cached.add(r.latency_ns / 1000);
      this.tick().cache++;
    } else if (r.source === "failmode") {
      this.sources["fail mode (driver)"]++;
      this.tick().failMode++;
    } else if (r.source === "broker") this.uncached.add(r.latency_ns / 1000);
  }

  onDecision(rec: DecisionRecord): void {
    const t = this.tick();
    if (rec.source === "server") {
      this.sources.server++;
      t.server++;
    } else if (rec.source === "stale") {
      this.sources.stale++;
      t.stale++;
    } else {
      this.sources["fail mode (broker)"]++;
      t.failMode++;
    }
    const d = rec.response.decision;
    if (d === Decision.APPROVE) this.brokerDecisions.approve++;
    else if (d === Decision.AUDIT) this.brokerDecisions.audit++;
    else if (rec.reply.decision === 0) this.brokerDecisions.allow++;
    else this.brokerDecisions.deny++;
    if (rec.approval) this.approvals[rec.approval]++;
    if (rec.reply.decision !== 0) {
      const rule = rec.response.rule || "(none)";
      this.denyRules.set(rule, (this.denyRules.get(rule) ?? 0) + 1);
    }
  }

  note(line: string): void {
    const s = ((Date.now() - this.startedAt) / 1000).toFixed(1);
    this.events.push(`${s.padStart(5)}s  ${line}`);
    if (this.events.length > 10) this.events.shift();
  }

  private tick() {
    const second = Math.floor((Date.now() - this.startedAt) / 1000);
    let last = this.timeline.at(-1);
    if (!last || last.second !== second) {
      last = { second, server: 0, cache: 0, stale: 0, failMode: 0 };
      this.timeline.push(last);
    }
    return last;
  }

  /** Decisions per second over the last 3 seconds. */
  private rate(): number {
    const now = Date.now();
    this.window.push({ at: now, ops: this.ops });
    while (this.window.length > 1 && now - this.window[0]!.at > 3000) this.window.shift();
    const first = this.window[0]!;
    return now > first.at ? ((this.ops - first.ops) * 1000) / (now - first.at) : 0;
  }

  render(
    status: { broker: string; breaker: string; driver: string; policy: string; metricsUrl?: string },
    final = false,
  ): string {
    const us = (v: number) =>
      Number.isNaN(v) ? "-" : v >= 1000 ? `${(v / 1000).toFixed(2)} ms` : `${v.toFixed(1)} µs`;
    const pct = (a: number, b: number) => (b ? `${((100 * a) / b).toFixed(1)}%` : "-");
    const elapsed = (Date.now() - this.startedAt) / 1000;
    const lines = [
      `agentsh-win demo  ${elapsed.toFixed(0)} s   policy ${status.policy}   breaker ${status.breaker}   driver ${status.driver}`,
      "",
      `decisions/s        ${(final ? this.ops / elapsed : this.rate()).toFixed(0).padStart(8)}${final ? " (average)" : ""}     total ${this.ops}${this.errors ? `   errors ${this.errors}` : ""}`,
      `allowed / denied   ${String(this.results.allow).padStart(8)} / ${this.results.deny}`,
      `broker decided     allow ${this.brokerDecisions.allow}  deny ${this.brokerDecisions.deny}  approve ${this.brokerDecisions.approve}  audit ${this.brokerDecisions.audit}` +
        `   (approvals: ${this.approvals.approved} approved, ${this.approvals.denied} denied, ${this.approvals.timed_out} timed out)`,
      `cache hit ratio    ${pct(this.sources["driver cache"], this.ops).padStart(8)}`,
      `latency cached     p50 ${us(this.cached.pct(0.5)).padStart(10)}   p99 ${us(this.cached.pct(0.99)).padStart(10)}   (${this.cached.count} in the driver)`,
      `latency uncached   p50 ${us(this.uncached.pct(0.5)).padStart(10)}   p99 ${us(this.uncached.pct(0.99)).padStart(10)}   (${this.uncached.count} through the broker)`,
      "",
      "decisions by source",
      ...(Object.entries(this.sources) as Array<[Source, number]>).map(
        ([k, v]) => `  ${k.padEnd(20)} ${String(v).padStart(8)}  ${pct(v, this.ops).padStart(6)}`,
      ),
      "",
      "top denying rules (decided by the broker)",
      ...[...this.denyRules.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 6)
        .map(([rule, n]) => `  ${rule.slice(0, RULE_WIDTH).padEnd(RULE_WIDTH)} ${String(n).padStart(6)}`),
      "",
      "events",
      ...(this.events.length ? this.events.map((e) => `  ${e}`) : ["  (none)"]),
    ];
    if (status.metricsUrl) lines.push("", `metrics: ${status.metricsUrl}`);
    return lines.join("\n");
  }

  /** Per-second decisions by source, for the outage scenario: shows fail mode and recovery. */
  renderTimeline(): string {
    const rows = this.timeline.map(
      (t) =>
        `  ${String(t.second).padStart(4)}s  server ${String(t.server).padStart(5)}  cache ${String(t.cache).padStart(5)}  stale ${String(t.stale).padStart(5)}  fail mode ${String(t.failMode).padStart(5)}`,
    );
    return ["decisions by source, per second", ...rows].join("\n");
  }
}
