// The broker's metrics, through the OpenTelemetry API only (no-ops until an SDK is registered; see
// telemetry/sdk.ts). What the hot code records per decision (decisions, latency, RPC durations) is
// counted into plain arrays and published at collection (an observed counter; histograms through
// the telemetry package's metric producer, telemetry/metrics.ts); approvals and breaker transitions
// are synchronous instruments; everything that is a state or a counter kept elsewhere (driver GET_METRICS, breaker,
// port, sessions, policy version) is observed at collection time. The driver's counts of what it
// decided alone (GET_DECISION_COUNTS) are polled every `pollMs` and their deltas counted as decisions
// of source driver_cache and driver_fail_mode, by kind, operation and decision like the broker's own,
// so `agentsh_decisions_total` covers every hop.
//
// Attribute values are small fixed sets (kind, operation, decision, source, hop, outcome, ...);
// never a path, a session token or a pid. Names and units: deploy/README.md.

import { Decision, Kind, Operation } from "@agentsh/proto";
import { FastHistogram, type HistogramSeries, meterBinding, rpcSeriesLookup } from "@agentsh/telemetry";
import type {
  Attributes,
  Counter,
  Meter,
  ObservableCounter,
  ObservableGauge,
  UpDownCounter,
} from "@opentelemetry/api";
import type { DriverDecisionSource } from "./decide.js";
import { checkKindOperation } from "./driver-ops.js";
import type { DecisionCountsReply, MetricsReply } from "./port/codec.js";
import { DecisionEventSource, Decision as DriverDecision, decisionSlot } from "./port/protocol.js";

export const SCOPE = "agentsh-broker";
export const SCOPE_VERSION = "0.1.0";

/** Broker end-to-end decision latency (driver request in -> reply out), seconds. */
export const DECISION_BUCKETS_S = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];
/** rpc.client.duration / rpc.server.duration, milliseconds (OpenTelemetry RPC conventions). */
export const RPC_BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

export type Hop = "driver" | "broker";

/** What the observed instruments read from one broker (broker.ts implements it). */
export interface BrokerSource {
  driverConnected(): boolean;
  /** Last GET_METRICS answer (undefined before the first poll). */
  driverMetrics(): MetricsReply | undefined;
  breaker(): { open: boolean; consecutiveFailures: number; opened: number; probes: number };
  failModes(): { driver: "open" | "closed"; broker: "open" | "closed" };
  port(): { reconnects: number; lateReplies: number; replyFailures: number; malformed: number };
  relay(): { retries: number; inFlight: number };
  sessions(): number;
  trackedProcesses(): number;
  /** Policy versions this broker has seen; the current one last. */
  policyVersions(): readonly string[];
  policyVersionChanges(): number;
}

export interface BrokerInstruments {
  approvals: Counter;
  approvalsPending: UpDownCounter;
  breakerTransitions: Counter;
  driverReports: Counter;
}

const sources = new Set<BrokerSource>();
/** The instruments of the meter provider registered now (re-created when it changes). */
export const brokerInstruments: () => BrokerInstruments = meterBinding(SCOPE, SCOPE_VERSION, create);

export function addBrokerSource(s: BrokerSource): void {
  sources.add(s);
  brokerInstruments();
}

export function removeBrokerSource(s: BrokerSource): void {
  sources.delete(s);
}

const lower = (names: Record<number, string>, v: number): string => (names[v] ?? "unspecified").toLowerCase();

export function kindName(k: Kind): string {
  return lower(Kind as unknown as Record<number, string>, k);
}
export function operationName(o: Operation): string {
  return lower(Operation as unknown as Record<number, string>, o);
}
export function decisionName(d: Decision): string {
  return lower(Decision as unknown as Record<number, string>, d);
}

// agentsh.decisions is counted here and observed at collection: a synchronous counter hashes its
// attributes on every add (about 1 us with four); this is an array index. Cumulative since start.
interface Slot {
  attrs: Attributes;
  n: number;
}
const decisionSlots: Slot[] = [];
/** The decision sources (an index each): the broker's, then the driver's own. */
const SOURCES = ["server", "stale", "fail_mode", "driver_cache", "driver_fail_mode"];
/** The enum values counted by small key (countDecision): kinds, operations, decisions, sources. */
const SMALL_KINDS = 4;
const SMALL_OPS = 32;
const SMALL_DECISIONS = 8;
const SMALL_SOURCES = 8;
/**
 * By small key (countDecision): every slot there from the start, so that the array keeps fast
 * elements (written first at a high index, it became a sparse dictionary, a slower keyed load).
 */
const slotBySmallKey: Array<Slot | undefined> = Array.from(
  { length: SMALL_KINDS * SMALL_OPS * SMALL_DECISIONS * SMALL_SOURCES },
  () => undefined,
);
const slotByKey = new Map<string, Slot>();

/** agentsh.decisions as it would be observed now: every series and its count (tests). */
export function decisionSeries(): ReadonlyArray<{ attrs: Attributes; n: number }> {
  return decisionSlots.map((s) => ({ attrs: s.attrs, n: s.n }));
}

function newSlot(attrs: Attributes): Slot {
  const s = { attrs: Object.freeze(attrs), n: 0 };
  decisionSlots.push(s);
  return s;
}

/**
 * `n` decisions (one by default) of a source: server, stale or fail_mode (the broker's), or
 * driver_cache or driver_fail_mode (the driver's own, from GET_DECISION_COUNTS).
 */
export function countDecision(kind: Kind, op: Operation, decision: Decision, source: string, n = 1): void {
  const si = SOURCES.indexOf(source);
  // Enum values are small integers: one array slot per combination (others: a keyed map).
  if (
    si >= 0 &&
    si < SMALL_SOURCES &&
    kind >= 0 &&
    kind < SMALL_KINDS &&
    op >= 0 &&
    op < SMALL_OPS &&
    decision >= 0 &&
    decision < SMALL_DECISIONS
  ) {
    const k = ((kind * SMALL_OPS + op) * SMALL_DECISIONS + decision) * SMALL_SOURCES + si;
    let s = slotBySmallKey[k];
    if (!s) {
      s = newSlot(decisionAttrs(kind, op, decision, source));
      slotBySmallKey[k] = s;
    }
    s.n += n;
    return;
  }
  const key = `${kind}|${op}|${decision}|${source}`;
  let s = slotByKey.get(key);
  if (!s) {
    s = newSlot(decisionAttrs(kind, op, decision, source));
    slotByKey.set(key, s);
  }
  s.n += n;
}

function decisionAttrs(kind: Kind, op: Operation, decision: Decision, source: string): Attributes {
  return { kind: kindName(kind), operation: operationName(op), decision: decisionName(decision), source };
}

/**
 * Decisions the driver made alone counted by source only: from a driver without
 * GET_DECISION_COUNTS, whose GET_METRICS says how many but not of what.
 */
function countDriverDecisionsBySource(source: DriverDecisionSource, n: number): void {
  let s = slotByKey.get(source);
  if (!s) {
    s = newSlot({ source });
    slotByKey.set(source, s);
  }
  s.n += n;
}

// -- histograms (counted in arrays, published by the telemetry package's metric producer) ----------

const SCOPE_INFO = { name: SCOPE, version: SCOPE_VERSION };

const decisionDuration = new FastHistogram("agentsh.decision.duration", {
  scope: SCOPE_INFO,
  description:
    "Broker end-to-end decision latency for uncached decisions, from the driver's request to the reply (approvals excluded)",
  unit: "s",
  boundaries: DECISION_BUCKETS_S,
});

const rpcClientDuration = new FastHistogram("rpc.client.duration", {
  scope: SCOPE_INFO,
  description:
    "Duration of outbound RPCs to the policy servers; on CheckStream, one check message and its answer",
  unit: "ms",
  boundaries: RPC_BUCKETS_MS,
});

const latencySeries: Array<HistogramSeries | undefined> = [];
const latencyByKey = new Map<string, HistogramSeries>();

/** agentsh.decision.duration{kind,source}: one decision's end-to-end latency in seconds. */
export function recordDecisionLatency(kind: Kind, source: string, seconds: number): void {
  const si = SOURCES.indexOf(source);
  let s: HistogramSeries | undefined;
  if (si >= 0 && kind >= 0 && kind < 8) {
    const k = kind * 8 + si;
    s = latencySeries[k];
    if (!s) {
      s = decisionDuration.series({ kind: kindName(kind), source });
      latencySeries[k] = s;
    }
  } else {
    const key = `${kind}|${source}`;
    s = latencyByKey.get(key);
    if (!s) {
      s = decisionDuration.series({ kind: kindName(kind), source });
      latencyByKey.set(key, s);
    }
  }
  s.record(seconds);
}

/** The rpc.client.duration series of one (service, method, status code). */
export const rpcClientSeries = rpcSeriesLookup(rpcClientDuration);

/** The histograms (tests). */
export const brokerHistograms = { decisionDuration, rpcClientDuration };

// -- instruments ---------------------------------------------------------------------------------------

function create(meter: Meter, observe: boolean): BrokerInstruments {
  const i: BrokerInstruments = {
    approvals: meter.createCounter("agentsh.approvals", {
      description: "Approval requests held for a human, by outcome (approved, denied, timed_out)",
      unit: "{approval}",
    }),
    approvalsPending: meter.createUpDownCounter("agentsh.approvals.pending", {
      description: "Driver requests held while a human decides",
      unit: "{approval}",
    }),
    breakerTransitions: meter.createCounter("agentsh.breaker.transitions", {
      description: "Circuit breaker transitions of the broker -> policy server hop, by new state",
      unit: "{transition}",
    }),
    driverReports: meter.createCounter("agentsh.driver.decision_reports", {
      description:
        "Decisions the driver made alone that need an audit record (denials from its cache, fail-mode answers), by outcome: reported (the broker got it) or suppressed (left out by the driver's rate limit or a full queue)",
      unit: "{decision}",
    }),
  };
  if (!observe) return i;
  // Series that must exist before anything happens (alerts and panels query them).
  for (const outcome of ["approved", "denied", "timed_out"]) i.approvals.add(0, { outcome });
  for (const state of ["open", "closed"]) i.breakerTransitions.add(0, { state });
  for (const outcome of ["reported", "suppressed"]) i.driverReports.add(0, { outcome });
  i.approvalsPending.add(0);
  meter
    .createObservableCounter("agentsh.decisions", {
      description:
        "Decisions enforced for agent file and registry operations, by source (server, stale, fail_mode: decided by the broker; driver_cache, driver_fail_mode: by the driver alone)",
      unit: "{decision}",
    })
    .addCallback((r) => {
      for (const s of decisionSlots) r.observe(s.n, s.attrs);
    });
  observeAll(meter);
  return i;
}

function observeAll(meter: Meter): void {
  const g = (name: string, description: string, unit = "1"): ObservableGauge =>
    meter.createObservableGauge(name, { description, unit });
  const c = (name: string, description: string, unit: string): ObservableCounter =>
    meter.createObservableCounter(name, { description, unit });
  const o = {
    failState: g(
      "agentsh.fail_state",
      "1 while the hop answers by its fail mode (driver: FailState or no broker; broker: breaker open)",
    ),
    failTransitions: c("agentsh.fail_state.transitions", "Entries into fail mode per hop", "{transition}"),
    consecutive: g("agentsh.consecutive_failures", "Consecutive failures per hop", "{failure}"),
    failMode: g("agentsh.fail_mode.info", "Configured fail mode per hop (1 for the configured mode)"),
    breakerState: g("agentsh.breaker.state", "Broker -> policy server circuit breaker: 1 open, 0 closed"),
    breakerProbes: c("agentsh.breaker.probes", "Health probes sent while the breaker is open", "{probe}"),
    driverConnected: g("agentsh.driver.connected", "1 while the broker is connected to the driver's port"),
    cacheHits: c("agentsh.driver.cache.hits", "Driver decision cache hits", "{hit}"),
    cacheMisses: c("agentsh.driver.cache.misses", "Driver decision cache misses", "{miss}"),
    cacheEvictions: c("agentsh.driver.cache.evictions", "Driver cache entries evicted (capacity)", "{entry}"),
    cacheExpired: c("agentsh.driver.cache.expirations", "Driver cache entries expired (TTL)", "{entry}"),
    cacheCollapsed: c(
      "agentsh.driver.cache.collapsed",
      "Driver queries collapsed into one in-flight query",
      "{query}",
    ),
    cacheEntries: g("agentsh.driver.cache.entries", "Driver cache entries", "{entry}"),
    cacheCapacity: g("agentsh.driver.cache.capacity", "Driver cache capacity", "{entry}"),
    driverDecisions: c(
      "agentsh.driver.decisions",
      "Decisions the driver enforced (every source), by decision",
      "{decision}",
    ),
    driverQueries: c(
      "agentsh.driver.policy_queries",
      "Policy queries the driver sent to the broker, by kind",
      "{query}",
    ),
    driverTimeouts: c(
      "agentsh.driver.query.timeouts",
      "Driver queries the broker did not answer in time",
      "{query}",
    ),
    driverFailures: c(
      "agentsh.driver.query.failures",
      "Driver queries that failed (timeout, no broker, bad reply)",
      "{query}",
    ),
    reconnects: c("agentsh.port.reconnects", "Driver port losses followed by a reconnect", "{reconnect}"),
    lateReplies: c("agentsh.port.late_replies", "Replies the driver no longer waited for", "{reply}"),
    replyFailures: c("agentsh.port.reply_failures", "Replies that failed for another reason", "{reply}"),
    malformed: c("agentsh.port.malformed", "Malformed messages from the driver", "{message}"),
    retries: c("agentsh.relay.retries", "Checks retried on another replica", "{check}"),
    inFlight: g("agentsh.relay.in_flight", "Checks in flight to the policy servers", "{check}"),
    sessions: g("agentsh.sessions", "Agent sessions registered with the broker", "{session}"),
    processes: g("agentsh.processes.tracked", "Processes the driver tracks in agent sessions", "{process}"),
    version: g(
      "agentsh.policy.version.info",
      "Policy version announced to this broker: 1 for the current one, 0 for earlier ones",
    ),
    versionChanges: c(
      "agentsh.policy.version.changes",
      "Policy version changes seen (each flushes the driver cache)",
      "{change}",
    ),
  };
  meter.addBatchObservableCallback((r) => {
    for (const s of sources) {
      const m = s.driverMetrics();
      const connected = s.driverConnected();
      const br = s.breaker();
      const fm = s.failModes();
      const driverFailing = !connected || (m ? m.failState !== 0 : false);
      r.observe(o.failState, driverFailing ? 1 : 0, { hop: "driver" });
      r.observe(o.failState, br.open ? 1 : 0, { hop: "broker" });
      r.observe(o.failTransitions, Number(m?.failModeEntries ?? 0n), { hop: "driver" });
      r.observe(o.failTransitions, br.opened, { hop: "broker" });
      r.observe(o.consecutive, m?.consecutiveFailures ?? 0, { hop: "driver" });
      r.observe(o.consecutive, br.consecutiveFailures, { hop: "broker" });
      for (const hop of ["driver", "broker"] as const)
        for (const mode of ["open", "closed"] as const)
          r.observe(o.failMode, fm[hop] === mode ? 1 : 0, { hop, mode });
      r.observe(o.breakerState, br.open ? 1 : 0, { hop: "broker" });
      r.observe(o.breakerProbes, br.probes);
      r.observe(o.driverConnected, connected ? 1 : 0);
      if (m) {
        r.observe(o.cacheHits, Number(m.cacheHitCount));
        r.observe(o.cacheMisses, Number(m.cacheMissCount));
        r.observe(o.cacheEvictions, Number(m.cacheEvictionCount));
        r.observe(o.cacheExpired, Number(m.cacheExpiredCount));
        r.observe(o.cacheCollapsed, Number(m.cacheCollapsedCount));
        r.observe(o.cacheEntries, m.cacheEntryCount);
        r.observe(o.cacheCapacity, m.cacheCapacity);
        r.observe(o.driverDecisions, Number(m.allowDecisions), { decision: "allow" });
        r.observe(o.driverDecisions, Number(m.denyDecisions), { decision: "deny" });
        r.observe(o.driverDecisions, Number(m.pendingDecisions), { decision: "pending" });
        r.observe(o.driverQueries, Number(m.filePolicyQueries), { kind: "file" });
        r.observe(o.driverQueries, Number(m.registryPolicyQueries), { kind: "registry" });
        r.observe(o.driverTimeouts, Number(m.policyQueryTimeouts));
        r.observe(o.driverFailures, Number(m.policyQueryFailures));
      }
      const p = s.port();
      r.observe(o.reconnects, p.reconnects);
      r.observe(o.lateReplies, p.lateReplies);
      r.observe(o.replyFailures, p.replyFailures);
      r.observe(o.malformed, p.malformed);
      const rl = s.relay();
      r.observe(o.retries, rl.retries);
      r.observe(o.inFlight, rl.inFlight);
      r.observe(o.sessions, s.sessions());
      r.observe(o.processes, s.trackedProcesses());
      const versions = s.policyVersions();
      for (const [idx, v] of versions.entries())
        r.observe(o.version, idx === versions.length - 1 ? 1 : 0, { component: "broker", policy_version: v });
      r.observe(o.versionChanges, s.policyVersionChanges());
    }
  }, Object.values(o));
}

const DRIVER_SOURCE: Record<number, DriverDecisionSource> = {
  [DecisionEventSource.CACHE]: "driver_cache",
  [DecisionEventSource.FAIL_MODE]: "driver_fail_mode",
};
const DRIVER_DECISION: Record<number, Decision> = {
  [DriverDecision.ALLOW]: Decision.ALLOW,
  [DriverDecision.DENY]: Decision.DENY,
};

/**
 * Adds what the driver decided alone since the last poll to agentsh.decisions: by kind, operation,
 * decision and source from GET_DECISION_COUNTS, or, from a driver without it (`counts` undefined),
 * its cache hits and fail-mode decisions from GET_METRICS by source only.
 */
export class DriverPoll {
  private last: MetricsReply | undefined;
  /** The last GET_DECISION_COUNTS by slot; undefined when the last poll had none. */
  private lastCounts: Map<number, bigint> | undefined;

  delta(m: MetricsReply, counts?: DecisionCountsReply): void {
    const prev = this.last;
    this.last = m;
    const before = this.lastCounts;
    this.lastCounts = counts && new Map(counts.entries.map((e) => [decisionSlot(e), e.count]));
    if (!prev) return; // the first answer is the baseline
    if (counts) {
      // Another driver (after one without the counts) or a restarted one counts from 0: everything
      // it reports is new. A restart shows as a slot below its last value or gone, or fewer
      // decisions in all than before.
      const restarted =
        !before ||
        m.allowDecisions + m.denyDecisions < prev.allowDecisions + prev.denyDecisions ||
        [...before].some(([slot, was]) => (this.lastCounts!.get(slot) ?? 0n) < was);
      for (const e of counts.entries) {
        const n = e.count - (restarted ? 0n : (before.get(decisionSlot(e)) ?? 0n));
        const source = DRIVER_SOURCE[e.source];
        if (n <= 0n || !source) continue;
        const { kind, operation } = checkKindOperation(e.kind, e.operation);
        countDecision(kind, operation, DRIVER_DECISION[e.decision]!, source, Number(n));
      }
      return;
    }
    if (before) return; // the first answer of a driver without the counts is its baseline
    const hits = m.cacheHitCount - prev.cacheHitCount;
    const fail = m.failModeDecisions - prev.failModeDecisions;
    // A driver restart resets its counters: start again from the new values.
    if (hits > 0n) countDriverDecisionsBySource("driver_cache", Number(hits));
    if (fail > 0n) countDriverDecisionsBySource("driver_fail_mode", Number(fail));
  }
}
