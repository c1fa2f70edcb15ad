/**
 * Public surface of @agentsh/policy-server.
 * - Engine: PolicyEngine (parse, compile, decide), the decision and input types.
 * - Canonicalisation: canonicalizeFile, canonicalizeRegistry, VolumeMap, upcase.
 * - Tools: lintPolicy, runTestFile, the CLI's main().
 * - Service: startPolicyServer (gRPC, gRPC-Web and Connect on one port, health, hot reload,
 *   approvals behind the ApprovalStore interface).
 */
export {
  type Approval,
  type ApprovalState,
  type ApprovalStore,
  MemoryApprovalStore,
  type MemoryStoreOptions,
  type NewApproval,
} from "./approval-store.js";
export { main as cli } from "./cli.js";
export {
  DEFAULT_APPROVAL_TIMEOUT_MS,
  DEFAULT_TTL_MS,
  type EngineOptions,
  PolicyEngine,
  policyHash,
} from "./engine.js";
export { HIGH_RISK, type HighRiskEntry } from "./engine-highrisk.js";
export { checkInputFromJson, decisionToJson } from "./engine-input.js";
export type { SessionInfo } from "./engine-session.js";
export type { CheckInput, Decision } from "./engine-types.js";
export { canonicalizeFile, type FileContext } from "./path-file.js";
export { canonicalizeRegistry, type RegistryContext } from "./path-registry.js";
export { type CanonicalPath, type CanonicalResult, isFailure, type Kind } from "./path-types.js";
export { upcase } from "./path-upcase.js";
export { VolumeMap } from "./path-volumes.js";
export { type Diagnostic, formatDiagnostic, PolicyError, type PolicyErrorCode } from "./policy-error.js";
export { lintPolicy } from "./policy-lint.js";
export { parsePolicy } from "./policy-parse.js";
export { runTestFile } from "./policy-test.js";
export type { DecisionKind, Operation, Policy, PolicyMode, Rule } from "./policy-types.js";
export { DEFAULT_ADDRESS, type PolicyServer, type PolicyServerOptions, startPolicyServer } from "./server.js";
export { PolicyStore, type PolicyVersion, type ReloadResult } from "./server-store.js";
