// Public surface of @agentsh/broker.
export * from "./port/codec.js";
export * from "./port/codec-error.js";
export * from "./port/protocol.js";
