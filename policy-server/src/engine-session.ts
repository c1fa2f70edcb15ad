/**
 * Per-session part of a compiled policy: the templated patterns expanded with one session's
 * values and compiled into small tries. Sessions with equal values share one entry; entries live
 * in an LRU cache, so a request costs one Map lookup here, not a recompilation.
 */
import {
  type Binding,
  type CompiledPolicy,
  canonicalizePattern,
  expandTemplate,
  insertPattern,
  newTrieSet,
  patternKeyVariants,
  type TrieSet,
} from "./engine-compile.js";
import { canonicalizeFile, type FileContext } from "./path-file.js";
import { isSid } from "./path-registry.js";
import { isFailure, type Kind } from "./path-types.js";

export interface SessionInfo {
  /** Workspace root (${WORKSPACE}), any path form canonicalisation accepts. */
  workspace?: string | undefined;
  /** Profile directory (${USERPROFILE}). */
  userProfile?: string | undefined;
  /** User SID (${USERSID}, HKCU). */
  userSid?: string | undefined;
  /** Host name of the machine, for loopback UNC detection. */
  host?: string | undefined;
}

export interface SessionMatchers {
  binding: Binding;
  tries: Record<Kind, TrieSet> | null;
}

interface Entry {
  profile: string;
  sid: string;
  volumes: string;
  host: string;
  matchers: SessionMatchers;
}

export class SessionCache {
  /** Keyed by workspace, then compared field by field (cheaper than building a joint key). */
  private readonly cache = new Map<string, Entry[]>();
  private count = 0;
  hits = 0;
  misses = 0;

  constructor(
    private readonly compiled: CompiledPolicy,
    private readonly capacity = 1024,
  ) {}

  get(session: SessionInfo, ctx: FileContext, volumesKey: string): SessionMatchers {
    const ws = session.workspace ?? "";
    const profile = session.userProfile ?? "";
    const sid = session.userSid ?? "";
    const host = session.host ?? "";
    let bucket = this.cache.get(ws);
    if (bucket !== undefined) {
      for (const e of bucket) {
        if (e.profile === profile && e.sid === sid && e.volumes === volumesKey && e.host === host) {
          this.hits++;
          return e.matchers;
        }
      }
    }
    this.misses++;
    const matchers = this.build(session, ctx);
    if (this.count >= this.capacity) {
      this.cache.clear();
      this.count = 0;
      bucket = undefined;
    }
    if (bucket === undefined) {
      bucket = [];
      this.cache.set(ws, bucket);
    }
    bucket.push({ profile, sid, volumes: volumesKey, host, matchers });
    this.count++;
    return matchers;
  }

  private build(session: SessionInfo, ctx: FileContext): SessionMatchers {
    const binding: Binding = {};
    for (const [v, raw] of [
      ["WORKSPACE", session.workspace],
      ["USERPROFILE", session.userProfile],
    ] as const) {
      if (!raw) continue;
      const c = canonicalizeFile(raw, ctx);
      if (!isFailure(c) && c.stream === undefined) binding[v] = c.display;
    }
    if (session.userSid && isSid(session.userSid)) binding.USERSID = session.userSid;
    if (this.compiled.templates.length === 0) return { binding, tries: null };
    const tries: Record<Kind, TrieSet> = { file: newTrieSet(), registry: newTrieSet() };
    for (const t of this.compiled.templates) {
      const rule = t.entry.rule;
      const strict = rule.decision === "deny" || rule.decision === "approve";
      const text = expandTemplate(t.text, binding, strict);
      if (text === null) continue;
      const c = canonicalizePattern(t.kind, text, ctx);
      if (isFailure(c)) continue;
      for (const keys of patternKeyVariants(t.kind, c.keys)) {
        insertPattern(tries[t.kind], rule, keys, t.entry.rank, t.entry.id);
      }
    }
    for (const set of Object.values(tries)) for (const tr of Object.values(set)) tr.finalize();
    return { binding, tries };
  }
}
