// BrokerService.GetStatus: what `agentsh-broker status` and `metrics` print.

import { BrokerService, type GetStatusResponse, GetStatusResponseSchema } from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import type { Broker } from "./broker.js";
import { Layouts } from "./port/protocol.js";

export function statusOf(b: Broker): GetStatusResponse {
  const counters: Record<string, bigint> = {};
  const rs = b.relay.stats();
  for (const [k, v] of Object.entries({
    server: rs.server,
    stale: rs.stale,
    fail_mode: rs.failMode,
    invalid: rs.invalid,
    retries: rs.retries,
  })) {
    counters[`relay_${k}`] = BigInt(v);
  }
  for (const [k, v] of Object.entries(rs.errors)) counters[`relay_error_${k}`] = BigInt(v);
  counters.breaker_opened = BigInt(rs.breaker.opened);
  counters.breaker_probes = BigInt(rs.breaker.probes);
  counters.breaker_consecutive_failures = BigInt(rs.breaker.consecutiveFailures);
  for (const [k, v] of Object.entries(b.port.stats))
    if (typeof v === "number") counters[`port_${k}`] = BigInt(v);
  const driver: Record<string, bigint> = {};
  let lastError = b.port.stats.lastError;
  if (b.port.connected) {
    try {
      const m = b.port.getMetrics() as unknown as Record<string, number | bigint>;
      for (const f of Layouts.metrics.fields)
        if (f.kind !== "header" && f.c !== "Reserved") driver[f.c] = BigInt(m[f.ts]!);
    } catch (e) {
      lastError = `GET_METRICS: ${(e as Error).message}`;
    }
  }
  return create(GetStatusResponseSchema, {
    host: b.config.host,
    driverConnected: b.port.connected,
    driverLibrary: b.lib.path,
    policyVersion: b.policyVersion,
    policyVersionChanges: BigInt(b.policyVersionChanges),
    breakerState: rs.breaker.state,
    serverFailMode: b.config.server.failMode,
    driverFailMode: b.config.driver.failMode,
    brokerCounters: counters,
    driverMetrics: driver,
    sessions: b.sessions.list().length,
    lastError,
    volumes: Object.fromEntries(b.volumes.list().map((v) => [v.drive, v.device])),
  });
}

export function statusRoutes(b: Broker) {
  return (router: ConnectRouter) => router.service(BrokerService, { getStatus: () => statusOf(b) });
}
