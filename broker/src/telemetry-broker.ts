// Joins one Broker to its metrics (telemetry-metrics.ts): what the observed instruments read, the
// driver metrics poll (GET_METRICS and GET_DECISION_COUNTS every `pollMs`), breaker transitions and
// policy versions.
import type { Broker } from "./broker.js";
import type { DecisionCountsReply, MetricsReply } from "./port/codec.js";
import { PortError } from "./port/port-client.js";
import { HR, hresult } from "./port/port-hresult.js";
import type { BreakerState } from "./relay/relay-breaker.js";
import {
  addBrokerSource,
  type BrokerSource,
  brokerInstruments,
  DriverPoll,
  removeBrokerSource,
} from "./telemetry-metrics.js";

/** How often the driver's metrics are read (AGENTSH_TELEMETRY_POLL_MS overrides; default 1 s). */
export const DEFAULT_POLL_MS = 1000;

export class BrokerTelemetry implements BrokerSource {
  private metrics: MetricsReply | undefined;
  private readonly poll = new DriverPoll();
  private timer: NodeJS.Timeout | null = null;
  private readonly versions: string[] = [];
  /** False once the connected driver answered GET_DECISION_COUNTS with "not supported". */
  private countsSupported = true;

  constructor(
    private readonly broker: Broker,
    private readonly pollMs = Number(process.env.AGENTSH_TELEMETRY_POLL_MS) || DEFAULT_POLL_MS,
  ) {}

  // At the first connection the driver's counters become the baseline; after a reconnect, what the
  // driver decided alone meanwhile (fail mode) is counted.
  private readonly onConnected = () => {
    this.countsSupported = true; // maybe another driver
    this.pollDriver();
  };

  start(): void {
    addBrokerSource(this);
    if (this.timer) return;
    this.broker.port.on("connected", this.onConnected);
    this.timer = setInterval(() => this.pollDriver(), this.pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.broker.port.off("connected", this.onConnected);
    removeBrokerSource(this);
  }

  /** Reads GET_METRICS and GET_DECISION_COUNTS now (also done every pollMs). */
  pollDriver(): MetricsReply | undefined {
    if (!this.broker.port.connected) return this.metrics;
    try {
      const m = this.broker.port.getMetrics();
      this.metrics = m;
      this.poll.delta(m, this.decisionCounts());
    } catch {
      // the port is going away; the next connection's first answer continues the count
    }
    return this.metrics;
  }

  /** GET_DECISION_COUNTS, or undefined from a driver without it (counted by source only, then). */
  private decisionCounts(): DecisionCountsReply | undefined {
    if (!this.countsSupported) return undefined;
    try {
      return this.broker.port.getDecisionCounts();
    } catch (e) {
      if (!(e instanceof PortError && hresult(e.hr) === HR.ERROR_NOT_SUPPORTED)) throw e;
      this.countsSupported = false;
      return undefined;
    }
  }

  /** A decision the driver made alone reached the broker; `suppressed` more were left out before it. */
  driverDecisionReported(suppressed: number): void {
    const c = brokerInstruments().driverReports;
    c.add(1, { outcome: "reported" });
    if (suppressed > 0) c.add(suppressed, { outcome: "suppressed" });
  }

  breakerChanged(state: BreakerState): void {
    brokerInstruments().breakerTransitions.add(1, { state });
  }

  policyVersion(version: string): void {
    if (!version || this.versions[this.versions.length - 1] === version) return;
    const at = this.versions.indexOf(version);
    if (at >= 0) this.versions.splice(at, 1);
    this.versions.push(version);
    if (this.versions.length > 8) this.versions.shift();
  }

  // -- BrokerSource ------------------------------------------------------------------------------

  driverConnected(): boolean {
    return this.broker.port.connected;
  }
  driverMetrics(): MetricsReply | undefined {
    return this.metrics;
  }
  breaker() {
    const b = this.broker.relay.stats().breaker;
    return {
      open: b.state === "open",
      consecutiveFailures: b.consecutiveFailures,
      opened: b.opened,
      probes: b.probes,
    };
  }
  failModes() {
    const c = this.broker.config;
    return { driver: c.driver.failMode, broker: c.server.failMode };
  }
  port() {
    return this.broker.port.stats;
  }
  relay() {
    return this.broker.relay.stats();
  }
  sessions(): number {
    return this.broker.sessions.list().length;
  }
  trackedProcesses(): number {
    if (this.metrics && this.broker.port.connected) return this.metrics.trackedProcesses;
    let n = 0;
    for (const c of this.broker.processCounts.values()) n += c;
    return n;
  }
  policyVersions(): readonly string[] {
    return this.versions;
  }
  policyVersionChanges(): number {
    return this.broker.policyVersionChanges;
  }
}
