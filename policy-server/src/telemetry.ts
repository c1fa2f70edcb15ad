// The policy server's telemetry in one call. Everything else is the standard OTEL_* variables
// (telemetry/sdk.ts).
import { readFileSync } from "node:fs";
import { createLogger, startSdk, type Telemetry, type TelemetryOptions } from "@agentsh/telemetry";
import type { Logger as StoreLogger } from "./server-store.js";

export { activeTelemetry, type Telemetry } from "@agentsh/telemetry";

/** Default Prometheus port of a policy server replica (the broker's is 9464). */
export const POLICY_SERVER_PROMETHEUS_PORT = 9465;

export const POLICY_SERVER_VERSION = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;

/**
 * Starts the OpenTelemetry SDK for this process as `service` (default agentsh-policy-server).
 * `policyVersion` (the version loaded at start) becomes the resource attribute agentsh.policy.version;
 * the live one is the agentsh_policy_version_info gauge.
 */
export function startTelemetry(
  service = "agentsh-policy-server",
  opts: Partial<Omit<TelemetryOptions, "service">> & { policyVersion?: string } = {},
): Promise<Telemetry> {
  const { policyVersion, ...rest } = opts;
  return startSdk({
    service,
    version: POLICY_SERVER_VERSION,
    defaultPrometheusPort: POLICY_SERVER_PROMETHEUS_PORT,
    ...rest,
    attributes: { ...(policyVersion ? { "agentsh.policy.version": policyVersion } : {}), ...rest.attributes },
  });
}

/** The server's Logger (server-store.ts) as pino JSON lines on stderr, with trace ids. */
export function jsonLogger(service = "agentsh-policy-server"): StoreLogger {
  const p = createLogger({ service });
  return {
    info: (msg, f) => p.info(f ?? {}, msg),
    warn: (msg, f) => p.warn(f ?? {}, msg),
    error: (msg, f) => p.error(f ?? {}, msg),
  };
}
