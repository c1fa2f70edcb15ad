/**
 * Reads the policy YAML keeping positions: every problem is reported with file, line and column,
 * and unknown keys are errors (a misspelt `operatons:` must not silently widen a rule).
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from "yaml";
import type { Kind } from "./path-types.js";
import { parseDuration } from "./policy-duration.js";
import type { Diagnostic, SourcePosition } from "./policy-error.js";
import { compileTemplate } from "./policy-template.js";
import {
  DECISIONS,
  type DecisionKind,
  OPERATIONS,
  type Operation,
  type Policy,
  type PolicyMode,
  type Rule,
  type RulePattern,
  type Template,
} from "./policy-types.js";

const TOP_KEYS = [
  "version",
  "name",
  "description",
  "mode",
  "default_action",
  "default_read_action",
  "file_rules",
  "registry_rules",
];
const RULE_KEYS = [
  "name",
  "description",
  "paths",
  "operations",
  "decision",
  "message",
  "cache_ttl",
  "timeout",
  "notify",
  "allow_high_risk",
  "redirect_to",
];
const REGISTRY_RULE_KEYS = [...RULE_KEYS, "priority"];
/** Longest cache TTL a rule may ask for (the driver's CacheDefaultTTLMs range ends there). */
export const MAX_CACHE_TTL_MS = 3_600_000;
export const MAX_TIMEOUT_MS = 86_400_000;

export interface ParseResult {
  policy: Policy | undefined;
  diagnostics: Diagnostic[];
}

class Reader {
  readonly diagnostics: Diagnostic[] = [];
  constructor(
    private readonly lc: LineCounter,
    readonly file: string | undefined,
    private readonly doc: ReturnType<typeof parseDocument>,
  ) {}

  pos(node: Node | null | undefined): SourcePosition {
    const off = node?.range?.[0] ?? 0;
    const lp = this.lc.linePos(off);
    return { file: this.file, line: lp.line, column: lp.col };
  }

  error(node: Node | null | undefined, message: string, code: Diagnostic["code"] = "schema"): void {
    const p = this.pos(node);
    this.diagnostics.push({
      severity: "error",
      code,
      message,
      file: this.file,
      line: p.line,
      column: p.column,
    });
  }

  resolve(node: unknown): Node | null {
    if (isAlias(node)) return (node.resolve(this.doc) as Node | undefined) ?? null;
    return (node as Node | null) ?? null;
  }

  /** The entries of a mapping, reporting unknown and non-string keys. */
  entries(
    map: YAMLMap,
    allowed: readonly string[],
    what: string,
  ): Map<string, { key: Node; value: Node | null }> {
    const out = new Map<string, { key: Node; value: Node | null }>();
    for (const pair of map.items) {
      const key = pair.key as Node;
      if (!isScalar(key) || typeof key.value !== "string") {
        this.error(key, `${what}: keys must be strings`);
        continue;
      }
      if (!allowed.includes(key.value)) {
        const hint = nearest(key.value, allowed);
        this.error(
          key,
          `${what}: unknown key "${key.value}"${hint ? ` (did you mean "${hint}"?)` : ""}; known keys: ${allowed.join(", ")}`,
          "unknown_key",
        );
        continue;
      }
      out.set(key.value, { key, value: this.resolve(pair.value) });
    }
    return out;
  }

  string(node: Node | null, what: string): string | undefined {
    if (isScalar(node) && typeof node.value === "string") return node.value;
    this.error(node, `${what} must be a string`);
    return undefined;
  }

  bool(node: Node | null, what: string): boolean | undefined {
    if (isScalar(node) && typeof node.value === "boolean") return node.value;
    this.error(node, `${what} must be true or false`);
    return undefined;
  }

  /** The entry of `allowed` the node names. That entry, not the parsed string: a literal is an
   * internalised string, which the engine's comparisons (`decision === "allow"`) and keyed loads
   * (`STRICTNESS[decision]`) take by pointer, where a parsed copy is compared character by character
   * or looked up in V8's string table on every decision. */
  oneOf<T extends string>(node: Node | null, allowed: readonly T[], what: string): T | undefined {
    const i =
      isScalar(node) && typeof node.value === "string"
        ? (allowed as readonly string[]).indexOf(node.value)
        : -1;
    if (i >= 0) return allowed[i];
    this.error(node, `${what} must be one of ${allowed.join(", ")}`);
    return undefined;
  }

  duration(node: Node | null, what: string, max: number): number | undefined {
    if (isScalar(node) && typeof node.value === "string") {
      const ms = parseDuration(node.value);
      if (ms === undefined)
        this.error(node, `${what}: "${node.value}" is not a duration (e.g. 500ms, 30s, 2m, 1h)`);
      else if (ms > max) this.error(node, `${what}: ${node.value} is longer than the maximum ${max / 1000}s`);
      else return ms;
      return undefined;
    }
    if (isScalar(node) && node.value === 0) return 0;
    this.error(node, `${what} must be a duration with a unit, e.g. 30s`);
    return undefined;
  }

  template(node: Node | null, what: string): Template | undefined {
    const s = this.string(node, what);
    if (s === undefined) return undefined;
    const t = compileTemplate(s);
    if (typeof t === "string") {
      this.error(node, `${what}: ${t}`);
      return undefined;
    }
    return t;
  }
}

function nearest(word: string, options: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const o of options) {
    const d = editDistance(word.toLowerCase(), o);
    if (d < bestD) [best, bestD] = [o, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

/** Parses and validates policy text. The policy is returned only when there are no errors. */
export function parsePolicy(text: string, file?: string): ParseResult {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, merge: false });
  const r = new Reader(lc, file, doc);
  for (const e of doc.errors) {
    const lp = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
    r.diagnostics.push({
      severity: "error",
      code: "syntax",
      message: e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, ""),
      file,
      line: lp.line,
      column: lp.col,
    });
  }
  if (r.diagnostics.length > 0) return { policy: undefined, diagnostics: r.diagnostics };
  const root = r.resolve(doc.contents);
  if (!isMap(root)) {
    r.error(root, "the policy must be a mapping with version, name, default_action and rules");
    return { policy: undefined, diagnostics: r.diagnostics };
  }
  const top = r.entries(root, TOP_KEYS, "policy");
  const version = top.get("version");
  if (!version) r.error(root, 'policy: missing "version: 1"');
  else if (!isScalar(version.value) || version.value.value !== 1) r.error(version.value, "version must be 1");
  const get = <T>(key: string, f: (n: Node | null) => T | undefined, dflt: T): T => {
    const e = top.get(key);
    return e ? (f(e.value) ?? dflt) : dflt;
  };
  const name = get("name", (n) => r.string(n, "name"), "policy");
  const description = get<string | undefined>("description", (n) => r.string(n, "description"), undefined);
  const mode = get<PolicyMode>("mode", (n) => r.oneOf(n, ["enforce", "monitor"] as const, "mode"), "enforce");
  const defaults = ["allow", "deny", "approve", "audit"] as const;
  const defaultAction = get<DecisionKind>(
    "default_action",
    (n) => r.oneOf(n, defaults, "default_action"),
    "deny",
  );
  const defaultReadAction = get<DecisionKind>(
    "default_read_action",
    (n) => r.oneOf(n, defaults, "default_read_action"),
    "allow",
  );
  const fileRules = readRules(r, top.get("file_rules")?.value ?? null, "file", top.has("file_rules"));
  const registryRules = readRules(
    r,
    top.get("registry_rules")?.value ?? null,
    "registry",
    top.has("registry_rules"),
  );
  r.diagnostics.sort((a, b) => a.line - b.line || a.column - b.column);
  if (r.diagnostics.some((d) => d.severity === "error"))
    return { policy: undefined, diagnostics: r.diagnostics };
  const policy: Policy = {
    version: 1,
    name,
    mode,
    defaultAction,
    defaultReadAction,
    fileRules,
    registryRules,
    file,
    text,
  };
  if (description !== undefined) policy.description = description;
  return { policy, diagnostics: r.diagnostics };
}

function readRules(r: Reader, node: Node | null, kind: Kind, present: boolean): Rule[] {
  const list = `${kind}_rules`;
  if (!present || (isScalar(node) && node.value === null)) return [];
  if (!isSeq(node)) {
    r.error(node, `${list} must be a list of rules`);
    return [];
  }
  const rules: Rule[] = [];
  const names = new Map<string, SourcePosition>();
  node.items.forEach((item, index) => {
    const n = r.resolve(item);
    if (!isMap(n)) {
      r.error(n, `${list}[${index}] must be a mapping`);
      return;
    }
    const rule = readRule(r, n, kind, index, list);
    if (!rule) return;
    const prev = names.get(rule.name);
    if (prev) {
      r.error(n, `${list}[${index}]: rule name "${rule.name}" is already used at line ${prev.line}`);
    } else names.set(rule.name, rule.position);
    rules.push(rule);
  });
  return rules;
}

function readRule(r: Reader, map: YAMLMap, kind: Kind, index: number, list: string): Rule | undefined {
  const what = `${list}[${index}]`;
  const e = r.entries(map, kind === "registry" ? REGISTRY_RULE_KEYS : RULE_KEYS, what);
  const keyPositions: Record<string, SourcePosition> = {};
  for (const [k, v] of e) keyPositions[k] = r.pos(v.key);
  const before = r.diagnostics.length;
  const need = (k: string): Node | null | undefined => {
    const x = e.get(k);
    if (!x) r.error(map, `${what}: missing "${k}"`);
    return x?.value;
  };
  const nameNode = need("name");
  const name = nameNode === undefined ? `#${index}` : (r.string(nameNode, `${what}.name`) ?? `#${index}`);
  if (nameNode !== undefined && name.trim() === "") r.error(nameNode, `${what}.name must not be empty`);
  if (name === "default" || name === "default_read" || name.startsWith("builtin:")) {
    r.error(nameNode, `${what}.name "${name}" is reserved`);
  }
  const w = `rule "${name}"`;
  const paths: RulePattern[] = [];
  const pathsNode = need("paths");
  if (pathsNode !== undefined) {
    if (!isSeq(pathsNode) || pathsNode.items.length === 0)
      r.error(pathsNode, `${w}: paths must be a non-empty list`);
    else {
      for (const it of pathsNode.items) {
        const pn = r.resolve(it);
        const s = r.string(pn, `${w}: each path`);
        if (s !== undefined) {
          if (s.trim() === "") r.error(pn, `${w}: empty path pattern`);
          else paths.push({ text: s, position: r.pos(pn) });
        }
      }
    }
  }
  const ops = new Set<Operation>();
  const opsNode = need("operations");
  if (opsNode !== undefined) {
    if (!isSeq(opsNode) || opsNode.items.length === 0)
      r.error(opsNode, `${w}: operations must be a non-empty list`);
    else {
      for (const it of opsNode.items) {
        const on = r.resolve(it);
        const op = r.oneOf(on, [...OPERATIONS, "*"] as const, `${w}: operation`);
        if (op === "*") for (const o of OPERATIONS) ops.add(o);
        else if (op) ops.add(op);
      }
    }
  }
  const decNode = need("decision");
  const decision = decNode === undefined ? undefined : r.oneOf(decNode, DECISIONS, `${w}: decision`);
  const rule: Rule = {
    kind,
    index,
    name,
    paths,
    operations: ops,
    decision: decision ?? "deny",
    notify: false,
    priority: 0,
    allowHighRisk: false,
    position: r.pos(map),
    keyPositions,
  };
  const opt = (k: string): Node | null | undefined => e.get(k)?.value;
  if (opt("description") !== undefined) rule.description = r.string(opt("description")!, `${w}: description`);
  if (opt("message") !== undefined) rule.message = r.template(opt("message")!, `${w}: message`);
  if (opt("cache_ttl") !== undefined)
    rule.cacheTtlMs = r.duration(opt("cache_ttl")!, `${w}: cache_ttl`, MAX_CACHE_TTL_MS);
  if (opt("timeout") !== undefined)
    rule.timeoutMs = r.duration(opt("timeout")!, `${w}: timeout`, MAX_TIMEOUT_MS);
  if (opt("notify") !== undefined) rule.notify = r.bool(opt("notify")!, `${w}: notify`) ?? false;
  if (opt("allow_high_risk") !== undefined) {
    rule.allowHighRisk = r.bool(opt("allow_high_risk")!, `${w}: allow_high_risk`) ?? false;
  }
  const prio = opt("priority");
  if (prio !== undefined) {
    if (
      isScalar(prio) &&
      typeof prio.value === "number" &&
      Number.isInteger(prio.value) &&
      Math.abs(prio.value) <= 1e6
    ) {
      rule.priority = prio.value;
    } else r.error(prio, `${w}: priority must be an integer between -1000000 and 1000000`);
  }
  const redirect = opt("redirect_to");
  if (redirect !== undefined) rule.redirectTo = r.template(redirect, `${w}: redirect_to`);
  if (decision === "redirect" && redirect === undefined)
    r.error(decNode, `${w}: decision redirect needs redirect_to`);
  if (decision !== undefined && decision !== "redirect" && redirect !== undefined) {
    r.error(redirect, `${w}: redirect_to is only meaningful with decision: redirect`);
  }
  if (decision === "redirect" && kind === "registry")
    r.error(decNode, `${w}: registry rules cannot redirect`);
  return r.diagnostics.length === before ? rule : rule;
}
