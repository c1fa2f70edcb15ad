// The broker: port client + relay + decider + sessions, and the policy-version watch that flushes
// the driver's cache when the policy changes. `Broker.start()` is what `agentsh-broker run` does.
import { readFileSync } from "node:fs";
import { WatchPolicyRequestSchema, type WatchPolicyResponse } from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import { type BrokerConfig, driverConfigOf } from "./config.js";
import { Decider, type DecisionRecord } from "./decide.js";
import { type DriverEvent, PortClient, replyFor } from "./port/port-client.js";
import { type FltLib, fltLibPath, loadFltLib } from "./port/port-fltlib.js";
import { CacheScope, Kind, MsgType } from "./port/protocol.js";
import { Relay } from "./relay/relay.js";
import { PolicyChannel, targetOf } from "./relay/relay-grpc.js";
import { type Session, type SessionInput, SessionStore } from "./session/session-store.js";
import { BrokerTelemetry } from "./telemetry-broker.js";
import { VolumeMap } from "./volumes.js";

export interface BrokerHooks {
  onDecision?: (rec: DecisionRecord) => void;
  /** A decision the driver made alone and reported (config driver.decision_events): a denial
   * repeated from its cache, or a fail-mode answer. Not counted again in the metrics: the driver's
   * counters already hold it. */
  onDriverDecision?: (rec: DecisionRecord) => void;
  onPolicyVersion?: (ev: WatchPolicyResponse) => void;
  onEvent?: (ev: DriverEvent) => void;
  log?: (line: string) => void;
}

export class Broker {
  readonly lib: FltLib;
  readonly channel: PolicyChannel;
  readonly relay: Relay;
  readonly sessions: SessionStore;
  readonly volumes: VolumeMap;
  readonly port: PortClient;
  readonly decider: Decider;
  readonly telemetry: BrokerTelemetry;
  /** Processes per session, from the driver's process events (the root counts from registration). */
  readonly processCounts = new Map<bigint, number>();
  policyVersion = "";
  policyVersionChanges = 0;
  /** Policy versions that answered checks since the last flush (normally one). */
  private readonly answeredVersions = new Set<string>();
  private watchCall: grpc.ClientReadableStream<WatchPolicyResponse> | null = null;
  private watchTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    readonly config: BrokerConfig,
    private readonly hooks: BrokerHooks = {},
  ) {
    try {
      this.lib = loadFltLib(fltLibPath(config.driver.library || undefined));
    } catch (e) {
      throw new Error(
        `driver.library: cannot load ${config.driver.library || "the default library"}: ${(e as Error).message}`,
      );
    }
    const tls = config.server.tls;
    const read = (p: string) => {
      if (!p) return undefined;
      try {
        return readFileSync(p);
      } catch (e) {
        const key = p === tls.ca ? "server.tls.ca" : p === tls.cert ? "server.tls.cert" : "server.tls.key";
        throw new Error(
          `${key}: cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        );
      }
    };
    this.channel = new PolicyChannel({
      target:
        config.server.addresses.length === 1
          ? config.server.addresses[0]!
          : targetOf(config.server.addresses),
      tls: tls.ca || tls.cert ? { ca: read(tls.ca), cert: read(tls.cert), key: read(tls.key) } : undefined,
      keepaliveMs: config.server.keepaliveMs,
    });
    this.relay = new Relay({
      channel: this.channel,
      failMode: config.server.failMode,
      streams: config.server.streams,
      breakerThreshold: config.server.breaker.failures,
      probeIntervalMs: config.server.breaker.probeIntervalMs,
      staleIfErrorMs: config.server.staleIfErrorMs,
      onBreakerChange: (s) => {
        this.telemetry.breakerChanged(s);
        this.log(`policy server breaker ${s}`);
      },
    });
    this.sessions = new SessionStore(config.stateFile || undefined);
    this.volumes = VolumeMap.fromLib(this.lib);
    this.decider = new Decider({
      relay: this.relay,
      sessions: this.sessions,
      volumes: this.volumes,
      budgetMs: config.server.budgetMs,
      host: config.host,
      currentPolicyVersion: () => this.policyVersion,
      // (a broker that did not ask for the driver's reports has no use for them)
      cachedDenies: config.driver.decisionEvents ? config.driver.cacheMaxEntries : 0,
      onDecision: (rec) => {
        if (rec.source === "server" && rec.response.policyVersion && this.answeredVersions.size < 16) {
          this.answeredVersions.add(rec.response.policyVersion);
        }
        hooks.onDecision?.(rec);
      },
    });
    this.port = new PortClient({
      lib: this.lib,
      portName: config.driver.port,
      readers: config.driver.readers,
      config: driverConfigOf(config),
      onRequest: (req) => this.decider.answer(req),
      onEvent: (ev) => this.onDriverEvent(ev),
      onConnected: () => this.onPortConnected(),
      fallback: replyFor(config.server.failMode === "open", 0),
    });
    this.port.on("disconnected", (why: string) => this.log(`driver port lost (${why}); reconnecting`));
    this.port.on("connected", () => this.log(`driver port connected (${this.lib.path})`));
    this.telemetry = new BrokerTelemetry(this);
  }

  async start(): Promise<void> {
    this.telemetry.start();
    this.watchPolicy();
    await this.port.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.telemetry.stop();
    if (this.watchTimer) clearTimeout(this.watchTimer);
    this.watchCall?.cancel();
    await this.port.stop();
    this.relay.close();
    this.channel.close();
  }

  registerSession(input: SessionInput): Session {
    const s = this.sessions.add(input);
    this.processCounts.set(s.token, 1);
    if (this.port.connected) {
      try {
        this.port.registerSession(s.token, s.rootPid, s.workspace);
      } catch (e) {
        this.sessions.remove(s.token);
        this.processCounts.delete(s.token);
        throw e;
      }
    }
    return s;
  }

  unregisterSession(token: bigint): Session {
    const s = this.sessions.remove(token);
    this.processCounts.delete(token);
    if (this.port.connected) this.port.unregisterSession(token);
    return s;
  }

  private log(line: string): void {
    this.hooks.log?.(line);
  }

  private onPortConnected(): void {
    // A new connection (first, or after the broker or the driver restarted): the driver forgot
    // whatever it knew about this broker's sessions, so tell it again.
    this.volumes.refresh(this.lib);
    for (const s of this.sessions.list()) {
      // One session the driver refuses is reported and left out: it must not cost the connection
      // (and with it every other session).
      try {
        this.port.registerSession(s.token, s.rootPid, s.workspace);
      } catch (e) {
        this.log(
          `session ${s.token} (root pid ${s.rootPid}): the driver refused it: ${(e as Error).message}; unregister it`,
        );
        continue;
      }
      if (!this.processCounts.has(s.token)) this.processCounts.set(s.token, 1);
    }
  }

  private onDriverEvent(ev: DriverEvent): void {
    if (ev.type === MsgType.PROCESS_CREATED) {
      this.processCounts.set(ev.sessionToken, (this.processCounts.get(ev.sessionToken) ?? 0) + 1);
    } else if (ev.type === MsgType.PROCESS_TERMINATED) {
      const n = (this.processCounts.get(ev.sessionToken) ?? 1) - 1;
      this.processCounts.set(ev.sessionToken, Math.max(0, n));
    } else if (ev.type === MsgType.DECISION_EVENT && this.config.driver.decisionEvents) {
      // (the driver holds reports for the next broker: one that did not ask for them ignores them)
      const rec = this.decider.driverDecision(ev);
      if (rec) {
        this.telemetry.driverDecisionReported(ev.suppressed);
        this.hooks.onDriverDecision?.(rec);
      }
    }
    this.hooks.onEvent?.(ev);
  }

  /** Follows the policy version; on a change, flushes the driver's cache and the stale store. */
  private watchPolicy(): void {
    if (this.stopped) return;
    const fn = this.channel.policy.watchPolicy as (
      req: unknown,
      opts: grpc.CallOptions,
    ) => grpc.ClientReadableStream<WatchPolicyResponse>;
    const call = fn.call(
      this.channel.policy,
      create(WatchPolicyRequestSchema, { knownVersion: this.policyVersion }),
      {},
    );
    this.watchCall = call;
    call.on("data", (ev: WatchPolicyResponse) => this.onPolicyVersion(ev));
    const again = () => {
      if (this.watchCall !== call || this.stopped) return;
      this.watchCall = null;
      this.watchTimer = setTimeout(() => this.watchPolicy(), 500);
      this.watchTimer.unref();
    };
    call.on("error", again);
    call.on("end", again);
  }

  private onPolicyVersion(ev: WatchPolicyResponse): void {
    const known = this.policyVersion;
    this.policyVersion = ev.version;
    this.telemetry.policyVersion(ev.version);
    this.hooks.onPolicyVersion?.(ev);
    // The first announcement after start: the driver's cache was flushed when the port connected,
    // so only answers already given by another version are suspect.
    const changed =
      known === "" ? [...this.answeredVersions].some((v) => v !== ev.version) : known !== ev.version;
    if (!changed) return;
    this.policyVersionChanges++;
    this.answeredVersions.clear();
    // Any decision cached under another version is suspect; with prefixes, only those go.
    this.relay.policyChanged();
    if (!this.port.connected) return; // a reconnect flushes the driver's cache anyway
    try {
      if (ev.changedPrefixes.length > 0) {
        for (const p of ev.changedPrefixes)
          this.port.updateCache(CacheScope.PATH_PREFIX, Kind.ANY, 0n, this.volumes.toNt(p));
      } else {
        this.port.updateCache(CacheScope.ALL, Kind.ANY, 0n, "");
      }
      this.log(`policy ${ev.version}: driver cache flushed`);
    } catch (e) {
      this.log(`policy ${ev.version}: cache flush failed: ${(e as Error).message}`);
    }
  }
}
