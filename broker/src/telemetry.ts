// The broker's telemetry in one call: `await startTelemetry()` before (or after) building the Broker,
// print `scrapeUrl`. Everything else is the standard OTEL_* variables (telemetry/sdk.ts).
import { readFileSync } from "node:fs";
import { startSdk, type Telemetry, type TelemetryOptions } from "@agentsh/telemetry";

export { activeTelemetry, createLogger, type Logger, type Telemetry } from "@agentsh/telemetry";
export { auditHook, isAudited, resultHook } from "./telemetry-audit.js";

/** Default Prometheus port of the broker (the OpenTelemetry default); the policy server's is 9465. */
export const BROKER_PROMETHEUS_PORT = 9464;

export const BROKER_VERSION = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;

/**
 * Starts the OpenTelemetry SDK for this process as `service` (default agentsh-broker). `host` becomes
 * host.name (the broker's configured host name). Returns the Prometheus scrape URL in `scrapeUrl`.
 */
export function startTelemetry(
  service = "agentsh-broker",
  opts: Partial<Omit<TelemetryOptions, "service">> & { host?: string } = {},
): Promise<Telemetry> {
  const { host, ...rest } = opts;
  return startSdk({
    service,
    version: BROKER_VERSION,
    defaultPrometheusPort: BROKER_PROMETHEUS_PORT,
    ...rest,
    attributes: { ...(host ? { "host.name": host } : {}), ...rest.attributes },
  });
}
