import type { SessionInfo } from "./engine-session.js";
import type { Kind } from "./path-types.js";
import type { VolumeMap } from "./path-volumes.js";
import type { DecisionKind, Operation, PolicyMode } from "./policy-types.js";

/** One question to the engine. */
export interface CheckInput {
  kind: Kind;
  operation: Operation;
  /** Any form canonicalisation accepts (see path-file.ts, path-registry.ts). */
  path: string;
  /** Rename destination (operation rename). For registry keys a bare name means a sibling. */
  renameDest?: string | undefined;
  /** Registry value name (informational; rules match keys). */
  valueName?: string | undefined;
  session?: SessionInfo | undefined;
  /** Volume map of the host; overrides the engine's default map. */
  volumes?: VolumeMap | undefined;
  pid?: number | undefined;
}

/** The engine's answer. */
export interface Decision {
  /** What to enforce. In monitor mode a deny is answered as allow (see enforcedDecision). */
  decision: DecisionKind;
  /** What enforce mode decides (equal to decision in enforce mode). */
  enforcedDecision: DecisionKind;
  /** Monitor mode answered allow where enforce mode would deny. */
  wouldDeny: boolean;
  mode: PolicyMode;
  /** Rule name, or "default", "default_read", "builtin:high-risk", "builtin:invalid-path". */
  rule: string;
  /** Pattern as written in the policy ("" for defaults). */
  pattern: string;
  policyVersion: string;
  /** MITRE ATT&CK technique when the path is a built-in high-risk location, else "". */
  mitre: string;
  /** Name of the high-risk location, else "". */
  risk: string;
  message: string;
  cacheTtlMs: number;
  /** Canonical form of the path ("" when it could not be canonicalised). */
  canonicalPath: string;
  /** Renames: canonical source and destination ("" for a side that could not be canonicalised). */
  renamePaths?: { source: string; destination: string };
  /** Renames: which side's outcome is the answer. */
  decidedSide?: "source" | "destination";
  redirectPath?: string;
  approvalTimeoutMs?: number;
  notify: boolean;
  /** Why a path was refused or a short name made the answer stricter. */
  reason?: string;
}
