import type { Kind } from "./path-types.js";
import type { SourcePosition } from "./policy-error.js";

export const OPERATIONS = ["read", "write", "create", "delete", "rename"] as const;
export type Operation = (typeof OPERATIONS)[number];

export const DECISIONS = ["allow", "deny", "approve", "audit", "redirect"] as const;
export type DecisionKind = (typeof DECISIONS)[number];

export type PolicyMode = "enforce" | "monitor";

/** Strictness used when several decisions are possible (renames, 8.3 names): higher wins. */
export const STRICTNESS: Record<DecisionKind, number> = {
  allow: 0,
  audit: 1,
  redirect: 2,
  approve: 3,
  deny: 4,
};

/** A message template such as `agent may not touch credentials: {{.Path}}`, compiled. */
export interface Template {
  source: string;
  /** Literal text and field names, alternating: text, field, text, field, ..., text. */
  parts: string[];
}

export interface RulePattern {
  text: string;
  position: SourcePosition;
}

export interface Rule {
  kind: Kind;
  /** Position in its list (file_rules or registry_rules), from 0. */
  index: number;
  name: string;
  description?: string;
  paths: RulePattern[];
  operations: ReadonlySet<Operation>;
  decision: DecisionKind;
  message?: Template;
  cacheTtlMs?: number;
  timeoutMs?: number;
  notify: boolean;
  priority: number;
  allowHighRisk: boolean;
  redirectTo?: Template;
  position: SourcePosition;
  /** Where each key of the rule was written, for diagnostics. */
  keyPositions: Record<string, SourcePosition>;
}

export interface Policy {
  version: 1;
  name: string;
  description?: string;
  mode: PolicyMode;
  defaultAction: DecisionKind;
  defaultReadAction: DecisionKind;
  fileRules: Rule[];
  registryRules: Rule[];
  /** The file it came from, if any, and its text. */
  file: string | undefined;
  text: string;
}
