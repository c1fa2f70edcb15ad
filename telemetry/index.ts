// Public surface of @agentsh/telemetry: one OpenTelemetry bootstrap and one logger for both services
// (the broker and the policy server), so the two cannot drift apart.
export * from "./light-trace.js";
export * from "./log.js";
export * from "./metrics.js";
export * from "./sdk.js";
export * from "./trace.js";
