/**
 * Compiles a parsed policy once per load: every pattern is canonicalised (with the same code as
 * request paths) and inserted into one trie per (kind, operation). Patterns that use session
 * variables (`${WORKSPACE}`, `${USERPROFILE}`, `${USERSID}`, and HKCU/HKCR which mean
 * `HKU\${USERSID}`) are kept as templates: for each distinct session context they are expanded and
 * compiled into a small per-session trie, cached (engine-session.ts). Static rules never recompile.
 */
import { HIGH_RISK, type HighRiskEntry } from "./engine-highrisk.js";
import { compileGlob, hasGlob } from "./match-glob.js";
import { Trie } from "./match-trie.js";
import { canonicalizeFile, type FileContext } from "./path-file.js";
import { canonicalizeRegistry } from "./path-registry.js";
import { type CanonicalResult, isFailure, type Kind } from "./path-types.js";
import type { Diagnostic } from "./policy-error.js";
import { OPERATIONS, type Operation, type Policy, type Rule } from "./policy-types.js";

export const VARIABLES = ["WORKSPACE", "USERPROFILE", "USERSID"] as const;
export type Variable = (typeof VARIABLES)[number];
export type Binding = Partial<Record<Variable, string>>;

export interface PatternEntry {
  id: number;
  rule: Rule;
  rank: number;
  /** The pattern as written in the policy. */
  text: string;
}

export interface TemplatePattern {
  entry: PatternEntry;
  kind: Kind;
  /** Text to expand (HKCU/HKCR already rewritten to HKU\${USERSID}...). */
  text: string;
}

export type TrieSet = Record<Operation, Trie>;

export interface CompiledPolicy {
  policy: Policy;
  /** Rules of each kind in rank order. */
  ranked: Record<Kind, Rule[]>;
  patterns: PatternEntry[];
  tries: Record<Kind, TrieSet>;
  templates: TemplatePattern[];
  highRisk: Record<Kind, Trie>;
  highRiskEntries: readonly HighRiskEntry[];
  diagnostics: Diagnostic[];
}

/** Values used to check templated patterns when the policy loads. */
const SAMPLE: Required<Binding> = {
  WORKSPACE: "C:\\agentsh-sample\\workspace",
  USERPROFILE: "C:\\Users\\agentsh-sample",
  USERSID: "S-1-5-21-1-2-3-1001",
};

export function canonicalizePattern(kind: Kind, text: string, ctx: FileContext = {}): CanonicalResult {
  return kind === "file" ? canonicalizeFile(text, ctx, true) : canonicalizeRegistry(text, {}, true);
}

export function newTrieSet(): TrieSet {
  return Object.fromEntries(OPERATIONS.map((o) => [o, new Trie()])) as TrieSet;
}

/** HKCU / HKCR / HKEY_CURRENT_USER_LOCAL_SETTINGS patterns in terms of HKLM and HKU\${USERSID}. */
export function registryAlternatives(text: string): string[] {
  const m =
    /^(?:Computer\\)?(HKCU|HKEY_CURRENT_USER|HKCR|HKEY_CLASSES_ROOT|HKEY_CURRENT_USER_LOCAL_SETTINGS):?(?=\\|$)/i.exec(
      text,
    );
  if (!m) return [text];
  const rest = text.slice(m[0].length);
  const root = m[1]!.toUpperCase();
  if (root === "HKCU" || root === "HKEY_CURRENT_USER") return [`HKU\\\${USERSID}${rest}`];
  if (root === "HKEY_CURRENT_USER_LOCAL_SETTINGS") return [`HKU\\\${USERSID}_Classes\\Local Settings${rest}`];
  return [`HKLM\\SOFTWARE\\Classes${rest}`, `HKU\\\${USERSID}_Classes${rest}`];
}

/** Checks variable use; returns an error or undefined. */
function checkVariables(kind: Kind, text: string): string | undefined {
  for (const m of text.matchAll(/\$\{([^}]*)\}/g)) {
    const v = m[1]!;
    if (!(VARIABLES as readonly string[]).includes(v))
      return `unknown variable \${${v}} (known: ${VARIABLES.join(", ")})`;
    if (v === "WORKSPACE" || v === "USERPROFILE") {
      if (kind === "registry") return `\${${v}} is a file path and cannot be used in a registry pattern`;
      if (m.index !== 0 || !/^(\\|\/|$)/.test(text.slice(v.length + 3))) {
        return `\${${v}} must start the pattern and be followed by \\ (e.g. \${${v}}\\**)`;
      }
    }
  }
  if (/\$\{/.test(text.replace(/\$\{[^}]*\}/g, ""))) return "unterminated ${";
  return undefined;
}

/**
 * Expands a template for a session. Unbound variables: in deny and approve rules a path variable
 * becomes `**` and the SID `*` (the rule still protects, more broadly); in other rules the pattern
 * does not apply (null), so nothing is allowed on the strength of a value we do not know.
 */
export function expandTemplate(text: string, b: Binding, strict: boolean): string | null {
  let out = "";
  let last = 0;
  for (const m of text.matchAll(/\$\{([A-Z]+)\}/g)) {
    const v = m[1] as Variable;
    let val = b[v];
    if (val === undefined) {
      if (!strict) return null;
      val = v === "USERSID" ? "*" : "**";
    }
    out += text.slice(last, m.index) + val;
    last = m.index! + m[0].length;
  }
  return out + text.slice(last);
}

function rankRules(policy: Policy): Record<Kind, Rule[]> {
  const registry = policy.registryRules
    .map((r, i) => ({ r, i }))
    .sort((a, b) => b.r.priority - a.r.priority || a.i - b.i)
    .map((x) => x.r);
  return { file: policy.fileRules, registry };
}

export function insertPattern(
  tries: TrieSet,
  rule: Rule,
  keys: readonly string[],
  rank: number,
  id: number,
): void {
  for (const op of rule.operations) tries[op].insert(keys, rank, id);
}

/** The registry `ControlSet*` glob also covers the canonical CurrentControlSet. */
export function patternKeyVariants(kind: Kind, keys: string[]): string[][] {
  if (
    kind === "registry" &&
    keys[0] === "HKLM" &&
    keys[1] === "SYSTEM" &&
    keys[2] !== undefined &&
    hasGlob(keys[2])
  ) {
    const t = compileGlob(keys[2]);
    if (!t("CURRENTCONTROLSET") && t("CONTROLSET001"))
      return [keys, ["HKLM", "SYSTEM", "CURRENTCONTROLSET", ...keys.slice(3)]];
  }
  return [keys];
}

export function compilePolicy(policy: Policy, ctx: FileContext = {}): CompiledPolicy {
  const diagnostics: Diagnostic[] = [];
  const ranked = rankRules(policy);
  const patterns: PatternEntry[] = [];
  const templates: TemplatePattern[] = [];
  const tries: Record<Kind, TrieSet> = { file: newTrieSet(), registry: newTrieSet() };
  for (const kind of ["file", "registry"] as const) {
    ranked[kind].forEach((rule, rank) => {
      for (const p of rule.paths) {
        const err = (message: string): void => {
          diagnostics.push({
            severity: "error",
            code: "pattern",
            message: `rule "${rule.name}": pattern "${p.text}": ${message}`,
            file: p.position.file,
            line: p.position.line,
            column: p.position.column,
          });
        };
        const entry: PatternEntry = { id: patterns.length, rule, rank, text: p.text };
        patterns.push(entry);
        const alternatives = kind === "registry" ? registryAlternatives(p.text) : [p.text];
        for (const alt of alternatives) {
          const verr = checkVariables(kind, alt);
          if (verr) {
            err(verr);
            continue;
          }
          if (alt.includes("${")) {
            const sample = canonicalizePattern(kind, expandTemplate(alt, SAMPLE, true)!, ctx);
            if (isFailure(sample)) err(sample.error);
            else templates.push({ entry, kind, text: alt });
            continue;
          }
          const c = canonicalizePattern(kind, alt, ctx);
          if (isFailure(c)) {
            err(c.error);
            continue;
          }
          for (const keys of patternKeyVariants(kind, c.keys))
            insertPattern(tries[kind], rule, keys, rank, entry.id);
        }
      }
    });
  }
  for (const set of Object.values(tries)) for (const t of Object.values(set)) t.finalize();
  const highRisk: Record<Kind, Trie> = {
    file: new Trie({ anchored: true }),
    registry: new Trie({ anchored: true }),
  };
  HIGH_RISK.forEach((h, i) => {
    const c = canonicalizePattern(h.kind, h.pattern);
    if (isFailure(c)) throw new Error(`built-in high-risk pattern ${h.pattern}: ${c.error}`);
    // The most specific (longest) location wins, ties by list order; integers keep ranks small
    // integers (Smis), which the trie compares fastest.
    const rank = 1_000_000 - c.keys.length * 1000 + i;
    highRisk[h.kind].insert(c.keys, rank, i);
    highRisk[h.kind].insert([...c.keys, "**"], rank, i);
  });
  highRisk.file.finalize();
  highRisk.registry.finalize();
  return { policy, ranked, patterns, tries, templates, highRisk, highRiskEntries: HIGH_RISK, diagnostics };
}
