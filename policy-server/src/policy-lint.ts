/**
 * `agentsh-policy lint`: every load error (syntax, schema, unknown keys, patterns) with its
 * position, plus warnings: rules that can never match because earlier rules always win for every
 * operation and pattern they have, settings that have no effect, 8.3 names in patterns.
 */
import { canonicalizePattern, compilePolicy, registryAlternatives } from "./engine-compile.js";
import { compileGlob, globCovers, hasGlob } from "./match-glob.js";
import { isFailure, type Kind } from "./path-types.js";
import type { VolumeMap } from "./path-volumes.js";
import type { Diagnostic, SourcePosition } from "./policy-error.js";
import { parsePolicy } from "./policy-parse.js";
import { type Policy, type Rule, STRICTNESS } from "./policy-types.js";

/** Variables become opaque stand-ins: only `**` (or `*` for the SID) covers them. */
const OPAQUE: Record<string, string> = {
  WORKSPACE: "\\\\__agentsh_var__\\WORKSPACE",
  USERPROFILE: "\\\\__agentsh_var__\\USERPROFILE",
  USERSID: "S-1-0-0-__USERSID__",
};

export function lintPolicy(text: string, file?: string, volumes?: VolumeMap): Diagnostic[] {
  const parsed = parsePolicy(text, file);
  const out = [...parsed.diagnostics];
  if (!parsed.policy) return out;
  const compiled = compilePolicy(parsed.policy, { volumes });
  out.push(...compiled.diagnostics);
  if (compiled.diagnostics.some((d) => d.severity === "error")) return out;
  out.push(...warnings(parsed.policy, compiled.ranked));
  return out.sort((a, b) => a.line - b.line || a.column - b.column);
}

function warn(pos: SourcePosition, message: string, code: Diagnostic["code"] = "lint"): Diagnostic {
  return { severity: "warning", code, message, file: pos.file, line: pos.line, column: pos.column };
}

function patternKeys(kind: Kind, text: string): string[][] {
  const alts = kind === "registry" ? registryAlternatives(text) : [text];
  const out: string[][] = [];
  for (const alt of alts) {
    const expanded = alt.replace(/\$\{([A-Z]+)\}/g, (_, v: string) => OPAQUE[v] ?? "");
    const c = canonicalizePattern(kind, expanded);
    if (!isFailure(c)) out.push(c.keys);
  }
  return out;
}

/** True when pattern a matches every path pattern b matches (conservative: false when unsure). */
export function patternCovers(a: readonly string[], b: readonly string[]): boolean {
  const memo = new Map<string, boolean>();
  const go = (i: number, j: number): boolean => {
    const k = `${i},${j}`;
    const m = memo.get(k);
    if (m !== undefined) return m;
    let r: boolean;
    if (i === a.length) r = j === b.length;
    else if (a[i] === "**") r = go(i + 1, j) || (j < b.length && go(i, j + 1));
    else if (j === b.length || b[j] === "**") r = false;
    else r = componentCovers(a[i]!, b[j]!) && go(i + 1, j + 1);
    memo.set(k, r);
    return r;
  };
  return go(0, 0);
}

function componentCovers(a: string, b: string): boolean {
  if (a === b) return true;
  if (!hasGlob(a)) return false;
  if (!hasGlob(b)) return compileGlob(a)(b);
  return globCovers(a, b);
}

function warnings(policy: Policy, ranked: Record<Kind, Rule[]>): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const kind of ["file", "registry"] as const) {
    const rules = ranked[kind];
    const keys = rules.map((r) => r.paths.map((p) => ({ p, alts: patternKeys(kind, p.text) })));
    rules.forEach((rule, ri) => {
      // Requests reach the 32-bit view's keys under either name, so WOW6432Node is folded into the
      // 64-bit key for patterns as well: a rule that lets through "...\WOW6432Node\..." lets
      // through the 64-bit keys too.
      if (kind === "registry" && rule.decision !== "deny" && rule.decision !== "approve")
        for (const p of rule.paths)
          if (/\\wow6432node(\\|$)/i.test(p.text))
            out.push(
              warn(
                p.position,
                `rule "${rule.name}": pattern "${p.text}": WOW6432Node names the same keys as the 64-bit view here, so this rule also ${rule.decision}s "${p.text.replace(/\\+wow6432node(?=\\|$)/i, "")}"`,
              ),
            );
      let coveredBy: Rule | undefined;
      let allCovered = true;
      for (const op of rule.operations) {
        for (const { alts } of keys[ri]!) {
          for (const bk of alts) {
            const winner = rules
              .slice(0, ri)
              .find(
                (earlier, ei) =>
                  earlier.operations.has(op) &&
                  keys[ei]!.some((e) => e.alts.some((ak) => patternCovers(ak, bk))),
              );
            if (!winner) allCovered = false;
            else coveredBy ??= winner;
          }
        }
      }
      if (allCovered && coveredBy) {
        const order = kind === "registry" ? " (priority, then order)" : "";
        // A path with 8.3 short names gets the strictest rule that could match its long name
        // (engine.ts, decideAmbiguous): there a stricter later rule still decides.
        const stricter = kind === "file" && STRICTNESS[rule.decision] > STRICTNESS[coveredBy.decision];
        const written = stricter ? " a path written in full" : "";
        const still = stricter
          ? " (it can still decide a path with 8.3 short names, which gets the stricter answer)"
          : "";
        out.push(
          warn(
            rule.position,
            `rule "${rule.name}" can never match${written}: earlier rule "${coveredBy.name}" (line ${coveredBy.position.line}) always wins${order}${still}`,
            "shadowed",
          ),
        );
      }
      if (rule.timeoutMs !== undefined && rule.decision !== "approve") {
        out.push(
          warn(
            rule.keyPositions.timeout ?? rule.position,
            `rule "${rule.name}": timeout only applies to decision: approve`,
          ),
        );
      }
      if (rule.cacheTtlMs !== undefined && rule.decision === "approve") {
        out.push(
          warn(
            rule.keyPositions.cache_ttl ?? rule.position,
            `rule "${rule.name}": approve decisions are never cached; cache_ttl is ignored`,
          ),
        );
      }
      if (rule.allowHighRisk && rule.decision !== "allow" && rule.decision !== "audit") {
        out.push(
          warn(
            rule.keyPositions.allow_high_risk ?? rule.position,
            `rule "${rule.name}": allow_high_risk only matters for allow and audit`,
          ),
        );
      }
      for (const p of rule.paths) {
        if (/(^|[\\/])[^\\/~]{1,6}~\d+(\.[^\\/.]{0,3})?([\\/]|$)/.test(p.text)) {
          out.push(
            warn(
              p.position,
              `rule "${rule.name}": "${p.text}" looks like an 8.3 short name; write the long name`,
            ),
          );
        }
      }
    });
  }
  void policy;
  return out;
}
