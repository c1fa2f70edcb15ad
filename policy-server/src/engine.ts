/**
 * The policy engine: a compiled policy plus the per-session cache, answering CheckInput with a
 * Decision. Decision rules (issue 4):
 * - File rules: first match in order; registry rules: highest priority first, then order.
 * - No rule: default_read_action for reads, default_action otherwise.
 * - A path that cannot be canonicalised: deny, rule "builtin:invalid-path", with the reason.
 * - Built-in high-risk locations (engine-highrisk.ts): a write/create/delete/rename that would be
 *   allowed or audited is denied (rule "builtin:high-risk") unless the deciding rule has
 *   allow_high_risk: true; approve stays approve; the technique id is on every decision there.
 * - Rename: the source is checked for rename, the destination for write and for create (renaming
 *   onto an existing file overwrites it); the stricter outcome is the answer, naming its side.
 * - 8.3 short names: the strictest decision among rules that could match the long name (see
 *   decideAmbiguous).
 * - Cache TTL: rule cache_ttl, else allow 5 s, deny 60 s, approve/audit/redirect 0; approve is
 *   never cached; an escalated high-risk deny uses the deny default.
 * - Monitor mode: a deny is answered allow, with enforcedDecision deny and wouldDeny.
 */
import { type CompiledPolicy, compilePolicy, type TrieSet } from "./engine-compile.js";
import { SessionCache, type SessionMatchers } from "./engine-session.js";
import type { CheckInput, Decision } from "./engine-types.js";
import { type AmbiguousMatch, NONE, type Trie } from "./match-trie.js";
import { canonicalizeFile, type FileContext } from "./path-file.js";
import { canonicalizeRegistryFor } from "./path-registry.js";
import { couldBeShortNameOf } from "./path-shortname.js";
import { type CanonicalPath, type CanonicalResult, isFailure, type Kind } from "./path-types.js";
import { upcase } from "./path-upcase.js";
import { VolumeMap } from "./path-volumes.js";
import { PolicyError } from "./policy-error.js";
import { parsePolicy } from "./policy-parse.js";
import { renderTemplate, type TemplateField } from "./policy-template.js";
import { type DecisionKind, type Operation, type Policy, type Rule, STRICTNESS } from "./policy-types.js";

export const DEFAULT_TTL_MS: Record<DecisionKind, number> = {
  allow: 5000,
  deny: 60000,
  approve: 0,
  audit: 0,
  redirect: 0,
};
export const DEFAULT_APPROVAL_TIMEOUT_MS = 120_000;
const NO_SESSION = Object.freeze({});

export interface EngineOptions {
  /** Default volume map (requests may bring their own). */
  volumes?: VolumeMap | undefined;
  /** Default user SID for requests without a session SID (CLI --user-sid). */
  userSid?: string | undefined;
  /** Host names of this machine besides localhost (upper or any case). */
  localHosts?: readonly string[] | undefined;
  /** Version string to report; defaults to "0-<hash>". */
  version?: string | undefined;
  sessionCacheSize?: number | undefined;
}

interface Side {
  decision: DecisionKind;
  rule: Rule | null;
  ruleName: string;
  pattern: string;
  mitre: string;
  risk: string;
  canonical: CanonicalPath | null;
  escalated: boolean;
  /** Always present (undefined when none), so every Side has one shape. */
  reason: string | undefined;
  raw: string;
  /** End of the default message, `: <verb> by <rule or default>` ("" where it does not apply). */
  tail: string;
}

export class PolicyEngine {
  readonly compiled: CompiledPolicy;
  readonly policy: Policy;
  readonly version: string;
  private readonly sessions: SessionCache;
  private readonly volumes: VolumeMap;
  private readonly userSid: string | undefined;
  private readonly localHosts: string[];
  private readonly noSessionCtx: FileContext;
  private readonly ctxByVolumes = new WeakMap<VolumeMap, FileContext>();
  /** Per pattern id, and for the defaults: the message tail, built once (see defaultMessage). */
  private readonly ruleTails: string[];
  private readonly defaultTail: string;
  private readonly defaultReadTail: string;

  constructor(compiled: CompiledPolicy, opts: EngineOptions = {}) {
    this.compiled = compiled;
    this.policy = compiled.policy;
    this.version = opts.version ?? `0-${policyHash(compiled.policy.text)}`;
    this.sessions = new SessionCache(compiled, opts.sessionCacheSize);
    this.volumes = opts.volumes ?? VolumeMap.empty;
    this.userSid = opts.userSid;
    this.localHosts = (opts.localHosts ?? []).map(upcase);
    this.noSessionCtx = { volumes: this.volumes, localHosts: this.localHosts };
    this.ruleTails = compiled.patterns.map((e) => `: ${VERB[e.rule.decision]} by rule "${e.rule.name}"`);
    this.defaultTail = `: ${VERB[this.policy.defaultAction]} by default_action`;
    this.defaultReadTail = `: ${VERB[this.policy.defaultReadAction]} by default_read_action`;
  }

  /** Parses, validates and compiles; throws PolicyError (with every diagnostic) on failure. */
  static fromText(text: string, opts: EngineOptions & { file?: string } = {}): PolicyEngine {
    return new PolicyEngine(compileOrThrow(text, opts.file, opts.volumes), opts);
  }

  decide(input: CheckInput): Decision {
    const s = input.session;
    const volumes = input.volumes ?? this.volumes;
    let ctx: FileContext = this.noSessionCtx;
    if (s?.host) ctx = { volumes, localHosts: [...this.localHosts, upcase(s.host)] };
    else if (input.volumes !== undefined && input.volumes !== this.volumes) {
      ctx = this.ctxByVolumes.get(input.volumes) ?? this.ctxFor(input.volumes);
    }
    const userSid = s?.userSid || this.userSid;
    // The default SID (CLI --user-sid) stands for a missing one in the session's templates too
    // (${USERSID}, {{.UserSid}}), not only in HKCU.
    const info = this.userSid !== undefined && !s?.userSid ? { ...s, userSid } : (s ?? NO_SESSION);
    const session = this.sessions.get(info, ctx, volumes.key);
    const kind = input.kind;
    const c = canonicalize(kind, input.path, ctx, userSid);
    if (input.operation !== "rename") {
      return this.finish(this.side(kind, input.operation, input.path, c, session), input, session);
    }
    // A rename moves what is below the source too: both sides are also checked as ancestors of the
    // built-in high-risk locations (renaming ...\CurrentVersion moves its Run key).
    const src = this.side(kind, "rename", input.path, c, session, true);
    let destRaw = input.renameDest ?? "";
    if (kind === "registry" && destRaw !== "" && !destRaw.includes("\\")) {
      // A new name for the key: its parent is the source's, as canonicalised (a trailing "\" on the
      // source names the same key, not a parent).
      const from = isFailure(c) ? input.path.replace(/\\+$/, "") : c.display;
      destRaw = from.slice(0, from.lastIndexOf("\\") + 1) + destRaw;
    }
    // The destination is checked for write and for create: one canonical form for both.
    const dest = canonicalize(kind, destRaw, ctx, userSid);
    const dw = this.side(kind, "write", destRaw, dest, session, true);
    const dc = this.side(kind, "create", destRaw, dest, session, true);
    const dst = STRICTNESS[dc.decision] > STRICTNESS[dw.decision] ? dc : dw;
    const useDst = STRICTNESS[dst.decision] > STRICTNESS[src.decision];
    const d = this.finish(useDst ? dst : src, input, session, useDst ? "destination" : "source");
    d.renamePaths = { source: src.canonical?.display ?? "", destination: dw.canonical?.display ?? "" };
    if (d.decision === "allow" || d.decision === "audit")
      d.cacheTtlMs = Math.min(d.cacheTtlMs, this.ttl(useDst ? src : dst, d.decision));
    if (d.mitre === "") {
      const other = useDst ? src : dst;
      d.mitre = other.mitre;
      d.risk = other.risk;
    }
    return d;
  }

  private ctxFor(volumes: VolumeMap): FileContext {
    const ctx = { volumes, localHosts: this.localHosts };
    this.ctxByVolumes.set(volumes, ctx);
    return ctx;
  }

  /** One side of a decision: the path `raw` (canonical form `c`) for `op`. */
  private side(
    kind: Kind,
    op: Operation,
    raw: string,
    c: CanonicalResult,
    session: SessionMatchers,
    ancestors = false,
  ): Side {
    if (isFailure(c)) {
      return {
        decision: "deny",
        rule: null,
        ruleName: "builtin:invalid-path",
        pattern: "",
        mitre: "",
        risk: "",
        canonical: null,
        escalated: false,
        reason: c.error,
        raw,
        tail: "",
      };
    }
    const cp = this.compiled;
    // Tries picked with comparisons, not keyed loads on kind and op (cheaper on this hot path).
    const sTries = session.tries;
    const sTrie = sTries === null ? undefined : trieFor(kind === "file" ? sTries.file : sTries.registry, op);
    let rule: Rule | null = null;
    let pattern = "";
    let reason: string | undefined;
    let tail = op === "read" ? this.defaultReadTail : this.defaultTail;
    if (c.shortNames === undefined) {
      const t = trieFor(kind === "file" ? cp.tries.file : cp.tries.registry, op);
      let id = t.match(c.keys);
      if (sTrie !== undefined && sTrie.size > 0) {
        // Only a session entry ranked before the static match can change the answer.
        const id2 = sTrie.match(c.keys, id >= 0 ? t.lastRank : NONE);
        if (id2 >= 0) id = id2;
      }
      if (id >= 0) {
        const e = cp.patterns[id]!;
        rule = e.rule;
        pattern = e.text;
        tail = this.ruleTails[id]!;
      }
    } else {
      const all = cp.tries[kind][op].matchAll(c.keys, c.shortNames, couldBeShortNameOf);
      if (sTrie !== undefined) all.push(...sTrie.matchAll(c.keys, c.shortNames, couldBeShortNameOf));
      const r = this.decideAmbiguous(all, op, c);
      rule = r.id >= 0 ? cp.patterns[r.id]!.rule : null;
      pattern = r.id >= 0 ? cp.patterns[r.id]!.text : "";
      if (r.id >= 0) tail = this.ruleTails[r.id]!;
      reason = r.reason;
    }
    const dflt = op === "read" ? this.policy.defaultReadAction : this.policy.defaultAction;
    let decision = rule ? rule.decision : dflt;
    let ruleName = rule ? rule.name : op === "read" ? "default_read" : "default";
    let mitre = "";
    let risk = "";
    let escalated = false;
    const hr = kind === "file" ? cp.highRisk.file : cp.highRisk.registry;
    let hid = -1;
    let hrGuess = false;
    let above = false;
    if (hr.size > 0) {
      if (c.shortNames === undefined) hid = hr.match(c.keys);
      else {
        const m = highRiskAmbiguous(hr, c);
        hid = m?.id ?? -1;
        hrGuess = m !== undefined && !m.exact;
      }
      if (hid < 0 && ancestors) {
        hid = hr.matchBelow(c.keys);
        above = hid >= 0;
      }
    }
    if (hid >= 0) {
      const h = cp.highRiskEntries[hid]!;
      mitre = h.technique;
      risk = h.name;
      if (op !== "read" && (decision === "allow" || decision === "audit") && !rule?.allowHighRisk) {
        escalated = true;
        const what = above ? `it holds ${h.name}, which a rename moves; ` : "";
        reason = rule
          ? `${what}rule "${rule.name}" ${decision}s it without allow_high_risk`
          : `${what}default_action ${decision}s it; high-risk locations need a rule with allow_high_risk`;
        decision = "deny";
        ruleName = "builtin:high-risk";
      }
      if (hrGuess) {
        const names = c.shortNames!.map((i) => c.keys[i]).join(", ");
        const note = `8.3 short name ${names} may stand for a name in ${h.name}`;
        reason = reason ? `${reason} (${note})` : note;
      }
    }
    return { decision, rule, ruleName, pattern, mitre, risk, canonical: c, escalated, reason, raw, tail };
  }

  /**
   * A path with 8.3 short-name components. Possible answers: if the rule that matches the path as
   * written matches it whatever the short names stand for (they fall under `*` or `**`), that rule
   * or any earlier rule that could match a long name; otherwise any rule that could match, or the
   * default. The strictest possible answer is taken (ties: earliest rule).
   */
  private decideAmbiguous(
    all: AmbiguousMatch[],
    op: Operation,
    c: CanonicalPath,
  ): { id: number; reason?: string } {
    let exact: AmbiguousMatch | undefined;
    for (const m of all) if (m.exact && (!exact || m.rank < exact.rank)) exact = m;
    const dflt = op === "read" ? this.policy.defaultReadAction : this.policy.defaultAction;
    const candidates = exact?.robust ? all.filter((m) => m === exact || m.rank < exact!.rank) : all;
    let best: AmbiguousMatch | undefined = exact?.robust ? exact : undefined;
    let bestStrict = best
      ? STRICTNESS[this.compiled.patterns[best.id]!.rule.decision]
      : exact?.robust
        ? -1
        : STRICTNESS[dflt];
    for (const m of candidates) {
      const s = STRICTNESS[this.compiled.patterns[m.id]!.rule.decision];
      if (s > bestStrict || (s === bestStrict && best && m.rank < best.rank)) {
        best = m;
        bestStrict = s;
      }
    }
    const id = best?.id ?? -1;
    const exactId = exact?.id ?? -1;
    if (id === exactId) return { id };
    const names = c.shortNames!.map((i) => c.keys[i]).join(", ");
    const what = id >= 0 ? `rule "${this.compiled.patterns[id]!.rule.name}"` : "the default action";
    return {
      id,
      reason: `8.3 short name ${names} may stand for a name that ${what} covers; the stricter answer is taken`,
    };
  }

  private ttl(side: Side, answer: DecisionKind): number {
    if (answer === "approve") return 0;
    if (side.rule && side.rule.cacheTtlMs !== undefined && !side.escalated && answer === side.decision) {
      return side.rule.cacheTtlMs;
    }
    return defaultTtl(answer);
  }

  private finish(
    side: Side,
    input: CheckInput,
    session: SessionMatchers,
    decidedSide?: "source" | "destination",
  ): Decision {
    const monitor = this.policy.mode === "monitor";
    const wouldDeny = monitor && side.decision === "deny";
    const answer: DecisionKind = wouldDeny ? "allow" : side.decision;
    const display = side.canonical?.display ?? "";
    const rule = side.rule;
    // Template fields only when a template renders (most decisions use the default message).
    // No closures here: tsx (keepNames) gives every named closure a defineProperty per call.
    let fields: Partial<Record<TemplateField, string>> | undefined;
    let message: string;
    if (rule?.message && !side.escalated) {
      fields = templateFields(side, input, session, display);
      message = renderTemplate(rule.message, fields);
    } else message = defaultMessage(side, input, display);
    const d: Decision = {
      decision: answer,
      enforcedDecision: side.decision,
      wouldDeny,
      mode: this.policy.mode,
      rule: side.ruleName,
      pattern: side.pattern,
      policyVersion: this.version,
      mitre: side.mitre,
      risk: side.risk,
      message,
      cacheTtlMs: this.ttl(side, answer),
      canonicalPath: display,
      notify: rule?.notify ?? false,
      // Every field present (undefined when it does not apply), so every decision has one shape:
      // properties added afterwards made several, and the code reading them polymorphic.
      renamePaths: undefined,
      decidedSide,
      redirectPath: undefined,
      approvalTimeoutMs:
        side.decision === "approve" ? (rule?.timeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS) : undefined,
      reason: side.reason,
    };
    if (side.decision === "redirect" && rule?.redirectTo)
      d.redirectPath = renderTemplate(
        rule.redirectTo,
        fields ?? templateFields(side, input, session, display),
      );
    return d;
  }
}

function templateFields(
  side: Side,
  input: CheckInput,
  session: SessionMatchers,
  display: string,
): Partial<Record<TemplateField, string>> {
  return {
    Path: display || side.raw,
    RequestPath: side.raw,
    Operation: input.operation,
    Kind: input.kind,
    Decision: side.decision,
    Rule: side.ruleName,
    Pattern: side.pattern,
    Mitre: side.mitre,
    ValueName: input.valueName ?? "",
    RenameDest: input.renameDest ?? "",
    Workspace: session.binding.WORKSPACE ?? "",
    UserSid: session.binding.USERSID ?? "",
    UserProfile: session.binding.USERPROFILE ?? "",
    Pid: input.pid === undefined ? "" : String(input.pid),
    Name: display.slice(display.lastIndexOf("\\") + 1),
  };
}

/**
 * The high-risk location a path with 8.3 short-name components may be in: the most specific one
 * that matches whatever long names they stand for (`C:\ProgramData\Microsoft\Windows\STARTM~1\...`
 * may be the Start Menu), so a short name cannot take a write out of a high-risk location.
 */
function highRiskAmbiguous(hr: Trie, c: CanonicalPath): AmbiguousMatch | undefined {
  let best: AmbiguousMatch | undefined;
  for (const m of hr.matchAll(c.keys, c.shortNames!, couldBeShortNameOf))
    if (!best || m.rank < best.rank) best = m;
  return best;
}

const VERB: Record<DecisionKind, string> = {
  allow: "allowed",
  deny: "denied",
  approve: "needs approval",
  audit: "allowed (audited)",
  redirect: "redirected",
};

function verbOf(d: DecisionKind): string {
  switch (d) {
    case "allow":
      return VERB.allow;
    case "deny":
      return VERB.deny;
    case "approve":
      return VERB.approve;
    case "audit":
      return VERB.audit;
    default:
      return VERB[d];
  }
}

/** `${op} ` without building it. */
function opPrefix(op: Operation): string {
  switch (op) {
    case "read":
      return "read ";
    case "write":
      return "write ";
    case "create":
      return "create ";
    case "delete":
      return "delete ";
    default:
      return `${op} `;
  }
}

/** DEFAULT_TTL_MS[d] without a keyed load. */
function defaultTtl(d: DecisionKind): number {
  switch (d) {
    case "allow":
      return DEFAULT_TTL_MS.allow;
    case "deny":
      return DEFAULT_TTL_MS.deny;
    default:
      return DEFAULT_TTL_MS[d];
  }
}

function canonicalize(
  kind: Kind,
  raw: string,
  ctx: FileContext,
  userSid: string | undefined,
): CanonicalResult {
  return kind === "file" ? canonicalizeFile(raw, ctx) : canonicalizeRegistryFor(raw, userSid);
}

/** set[op] without a keyed load. */
function trieFor(set: TrieSet, op: Operation): Trie {
  switch (op) {
    case "read":
      return set.read;
    case "write":
      return set.write;
    case "create":
      return set.create;
    case "delete":
      return set.delete;
    default:
      return set[op];
  }
}

function defaultMessage(side: Side, input: CheckInput, display: string): string {
  // The common case (a rule or default decided, no high-risk note, no reason): three pieces.
  if (!side.escalated && side.mitre === "" && !side.reason && side.tail !== "")
    return opPrefix(input.operation) + (display || side.raw) + side.tail;
  const what = `${input.operation} ${display || side.raw}`;
  const verb = verbOf(side.decision);
  if (side.ruleName === "builtin:invalid-path")
    return `${what}: denied, the path cannot be canonicalised: ${side.reason}`;
  if (side.escalated)
    return `${what}: denied, high-risk location (${side.risk}, MITRE ${side.mitre}): ${side.reason}`;
  const by = side.rule
    ? `rule "${side.rule.name}"`
    : side.ruleName === "default_read"
      ? "default_read_action"
      : "default_action";
  const risk = side.mitre ? ` [high-risk: ${side.risk}, MITRE ${side.mitre}]` : "";
  const why = side.reason ? ` (${side.reason})` : "";
  return `${what}: ${verb} by ${by}${risk}${why}`;
}

/** Parses, validates and compiles policy text; throws PolicyError listing every error. */
export function compileOrThrow(text: string, file?: string, volumes?: VolumeMap): CompiledPolicy {
  const parsed = parsePolicy(text, file);
  const errors = parsed.diagnostics.filter((d) => d.severity === "error");
  if (!parsed.policy || errors.length > 0) throw diagnosticsError(errors);
  const compiled = compilePolicy(parsed.policy, { volumes });
  const cerr = compiled.diagnostics.filter((d) => d.severity === "error");
  if (cerr.length > 0) throw diagnosticsError(cerr);
  return compiled;
}

function diagnosticsError(errors: import("./policy-error.js").Diagnostic[]): PolicyError {
  const first = errors[0]!;
  const code = first.code === "syntax" ? "syntax" : first.code === "pattern" ? "pattern" : "schema";
  return new PolicyError(code, first.message, {
    position: { file: first.file, line: first.line, column: first.column },
    diagnostics: errors,
  });
}

import { createHash } from "node:crypto";

/** sha256 of the policy text, first 12 hex digits. */
export function policyHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 12);
}
