/**
 * Compiled matcher: a trie keyed by canonical (upper-cased) components. Literal children are in a
 * Map (2 to 4 of them also in arrays, compared in turn), `*.EXT` globs in a Map keyed by extension,
 * other globs in a short list, and `**` in one child that may consume any number of components.
 * Every node knows the lowest rank in its subtree, so a lookup that already has a better
 * (lower-ranked) match prunes whole subtrees. A lookup costs about one Map probe per path
 * component, however many rules there are.
 *
 * Each entry is (rank, id): rank orders rules (first match for file rules; priority then order for
 * registry rules), id names the pattern in the engine's table.
 */
import { type ComponentTest, compileGlob, extensionGlob, hasGlob } from "./match-glob.js";

/** No rank / unbounded length. A small integer rather than Infinity: rank and length fields then
 * hold small integers (Smis) and compare without unboxing a heap number on every step. */
export const NONE = 0x3fffffff;

class Node {
  lit: Map<string, Node> | null = null;
  /** Bit min(length, 31) is set for every literal child's length: most misses skip the Map probe. */
  litLens = 0;
  /** The literal child when there is exactly one (set by finalize): compared, not hashed. */
  one: string | null = null;
  oneNode: Node | null = null;
  /** With 2..SMALL literal children (set by finalize): their names and nodes, compared in turn,
   * which is cheaper than hashing a freshly sliced component for a Map probe. */
  litKeys: string[] | null = null;
  litNodes: Node[] | null = null;
  ext: Map<string, Node> | null = null;
  extLens = 0;
  globs: { src: string; test: ComponentTest; any: boolean; node: Node }[] | null = null;
  star: Node | null = null;
  term = NONE;
  termId = -1;
  min = NONE;
  /** The entry of lowest rank in the subtree (-1: none). */
  minId = -1;
  /** Rank and id of the best entry strictly below this node through a literal or glob child (not
   * through `**`, which also matches nothing): what a path ending here is an ancestor of. */
  belowMin = NONE;
  belowId = -1;
  /** Fewest and most further components a match below this node consumes (most: Infinity with `**`). */
  minLen = 0;
  maxLen = 0;
  /** Only literal children: a component that is none of them cannot start a match here. */
  litOnly = false;
  /** Only `*.EXT` children (as in `**\*.pem`): a component without one of those extensions cannot
   * start a match here. */
  extOnly = false;
  /** No children at all (set by finalize): as the `**` child of a node, it matches any rest of the
   * path, so its entry is taken directly, without a walk into it. */
  leaf = false;
}

/** One match found by `matchAll`: `exact` if it matches the path as given, `robust` if it does so
 * whatever long names the short-name components stand for. */
export interface AmbiguousMatch {
  rank: number;
  id: number;
  exact: boolean;
  robust: boolean;
}

export class Trie {
  private readonly root = new Node();
  private bestRank = NONE;
  private bestId = -1;
  size = 0;
  /**
   * With `anchored`: one literal component of every entry (its last); a path none of whose
   * components is one of them cannot match, and `match` says so without walking. Null when off,
   * or when an entry has no literal component.
   */
  private anchors: Set<string> | null;
  /** A bit per anchor for a hash of its length, first and last character (see anchorBit): most
   * components are ruled out with three loads, without hashing the whole string. */
  private readonly anchorBits = new Uint32Array(ANCHOR_BITS >> 5);
  /** lenBit of every anchor's length: most components are ruled out by their length alone. */
  private anchorLens = 0;

  constructor(opts: { anchored?: boolean } = {}) {
    this.anchors = opts.anchored ? new Set() : null;
  }

  insert(keys: readonly string[], rank: number, id: number): void {
    if (this.anchors !== null) {
      const anchor = keys.findLast((k) => k !== "**" && !hasGlob(k));
      if (anchor === undefined) this.anchors = null;
      else {
        this.anchors.add(anchor);
        this.anchorLens |= lenBit(anchor.length);
        const b = anchorBit(anchor);
        this.anchorBits[b >> 5]! |= 1 << (b & 31);
      }
    }
    let n = this.root;
    for (const k of keys) {
      if (k === "**") {
        n.star ??= new Node();
        n = n.star;
      } else if (!hasGlob(k)) {
        n.lit ??= new Map();
        let c = n.lit.get(k);
        if (!c) {
          c = new Node();
          n.lit.set(k, c);
          n.litLens |= lenBit(k.length);
        }
        n = c;
      } else {
        const ext = extensionGlob(k);
        if (ext !== undefined) {
          n.ext ??= new Map();
          let c = n.ext.get(ext);
          if (!c) {
            c = new Node();
            n.ext.set(ext, c);
            n.extLens |= lenBit(ext.length);
          }
          n = c;
        } else {
          n.globs ??= [];
          let g = n.globs.find((x) => x.src === k);
          if (!g) {
            g = { src: k, test: compileGlob(k), any: k === "*", node: new Node() };
            n.globs.push(g);
          }
          n = g.node;
        }
      }
    }
    if (rank < n.term) {
      n.term = rank;
      n.termId = id;
    }
    this.size++;
  }

  /** Computes subtree minimum ranks; call once after the last insert. */
  finalize(): this {
    fin(this.root);
    return this;
  }

  /**
   * The best (lowest-rank) entry matching keys, as [rank, id]; id -1 when none matches. With
   * `below`, only entries ranked lower than it count (subtrees that cannot beat it are skipped).
   */
  match(keys: readonly string[], below = NONE): number {
    this.bestRank = below;
    this.bestId = -1;
    if (this.root.min < below && (this.anchors === null || this.anchored(keys)))
      this.walk(this.root, keys, 0);
    return this.bestId;
  }

  /** Does keys contain an anchor? */
  private anchored(keys: readonly string[]): boolean {
    const bits = this.anchorBits;
    const lens = this.anchorLens;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      if ((lens & lenBit(k.length)) === 0) continue;
      const b = anchorBit(k);
      if ((bits[b >> 5]! & (1 << (b & 31))) !== 0 && this.anchors!.has(k)) return true;
    }
    return false;
  }

  /**
   * The best entry that lies strictly below the path `keys` (keys name an ancestor of what it
   * matches), through at least one literal or glob component after the last `**`: an ancestor of
   * `**\\AppData\\...\\Startup` is a path ending inside `AppData\\...`, not every folder. -1 when none.
   */
  matchBelow(keys: readonly string[]): number {
    this.bestRank = NONE;
    this.bestId = -1;
    this.walkBelow(this.root, keys, 0, true);
    return this.bestId;
  }

  private walkBelow(n: Node, keys: readonly string[], i: number, atStar: boolean): void {
    if (i === keys.length) {
      if (!atStar && n.belowMin < this.bestRank) {
        this.bestRank = n.belowMin;
        this.bestId = n.belowId;
      }
      return;
    }
    const c = keys[i]!;
    const lit = n.lit?.get(c);
    if (lit !== undefined) this.walkBelow(lit, keys, i + 1, false);
    if (n.ext !== null) {
      const dot = lastDot(c);
      const ch = dot >= 0 ? n.ext.get(c.slice(dot + 1)) : undefined;
      if (ch !== undefined) this.walkBelow(ch, keys, i + 1, false);
    }
    if (n.globs !== null) for (const g of n.globs) if (g.test(c)) this.walkBelow(g.node, keys, i + 1, false);
    if (n.star !== null) for (let j = i; j <= keys.length; j++) this.walkBelow(n.star, keys, j, true);
  }

  /** Rank of the entry returned by the last `match`. */
  get lastRank(): number {
    return this.bestRank;
  }

  private walk(n: Node, keys: readonly string[], i: number): void {
    // A node with only literal children passes the walk on to at most one child: that step is a
    // loop iteration, not a call (most nodes are such links in a chain of literal components).
    for (;;) {
      if (n.min >= this.bestRank) return;
      const rem = keys.length - i;
      if (rem < n.minLen || rem > n.maxLen) return;
      if (rem === 0) {
        if (n.term < this.bestRank) {
          this.bestRank = n.term;
          this.bestId = n.termId;
        }
        if (n.star !== null) this.walkStar(n.star, keys, i);
        return;
      }
      const c = keys[i]!;
      let next: Node | undefined;
      if (n.one !== null) {
        if (c === n.one) next = n.oneNode!;
      } else if (n.litKeys !== null) {
        const ks = n.litKeys;
        for (let j = 0; j < ks.length; j++) {
          if (ks[j] === c) {
            next = n.litNodes![j]!;
            break;
          }
        }
      } else if (n.lit !== null && (n.litLens & lenBit(c.length)) !== 0) {
        next = n.lit.get(c);
      }
      if (n.ext === null && n.globs === null && n.star === null) {
        if (next === undefined) return;
        n = next;
        i++;
        continue;
      }
      if (next !== undefined) this.walk(next, keys, i + 1);
      this.walkOthers(n, keys, i, c);
      return;
    }
  }

  /** The non-literal children of n for component c = keys[i]: `*.EXT`, other globs, `**`. */
  private walkOthers(n: Node, keys: readonly string[], i: number, c: string): void {
    if (n.ext !== null) {
      const dot = lastDot(c);
      if (dot >= 0 && (n.extLens & lenBit(c.length - dot - 1)) !== 0) {
        const ch = n.ext.get(c.slice(dot + 1));
        if (ch !== undefined) this.walk(ch, keys, i + 1);
      }
    }
    if (n.globs !== null) {
      for (const g of n.globs) if (g.test(c)) this.walk(g.node, keys, i + 1);
    }
    const st = n.star;
    if (st !== null) this.walkStar(st, keys, i);
  }

  /** `**` child st of a node, with keys[i..] left: it may consume any number of them. */
  private walkStar(st: Node, keys: readonly string[], i: number): void {
    if (st.leaf) {
      // Nothing below: it matches whatever is left (the loop below would make the one walk at j =
      // keys.length, since its maxLen is 0).
      if (st.term < this.bestRank) {
        this.bestRank = st.term;
        this.bestId = st.termId;
      }
      return;
    }
    const last = keys.length - st.minLen;
    for (let j = Math.max(i, keys.length - st.maxLen); j <= last; j++) {
      if (st.litOnly) {
        const k = keys[j]!;
        if (st.one !== null ? k !== st.one : (st.litLens & lenBit(k.length)) === 0) continue;
      } else if (st.extOnly) {
        const k = keys[j]!;
        const dot = lastDot(k);
        if (dot < 0 || (st.extLens & lenBit(k.length - dot - 1)) === 0) continue;
      }
      this.walk(st, keys, j);
    }
  }

  /**
   * Every entry that could match when the components at `shortIdx` are 8.3 short names standing
   * for unknown long names: a short component may match a literal child whose name could have
   * that short name (`compatible`), and any glob. Used only for paths with short-name components.
   */
  matchAll(
    keys: readonly string[],
    shortIdx: readonly number[],
    compatible: (shortName: string, longName: string) => boolean,
  ): AmbiguousMatch[] {
    const found = new Map<number, AmbiguousMatch>();
    const shorts = new Set(shortIdx);
    const visit = (n: Node, i: number, exact: boolean, robust: boolean): void => {
      if (i === keys.length) {
        if (n.termId >= 0) {
          const m = found.get(n.termId);
          if (!m) found.set(n.termId, { rank: n.term, id: n.termId, exact, robust: exact && robust });
          else {
            m.exact ||= exact;
            m.robust ||= exact && robust;
          }
        }
        if (n.star !== null) visit(n.star, i, exact, robust);
        return;
      }
      const c = keys[i]!;
      const isShort = shorts.has(i);
      if (n.lit !== null) {
        if (isShort) {
          for (const [name, ch] of n.lit) {
            if (name === c) visit(ch, i + 1, exact, false);
            else if (compatible(c, name)) visit(ch, i + 1, false, false);
          }
        } else {
          const ch = n.lit.get(c);
          if (ch !== undefined) visit(ch, i + 1, exact, robust);
        }
      }
      if (n.ext !== null) {
        const dot = c.lastIndexOf(".");
        for (const [ext, ch] of n.ext) {
          const hit = dot >= 0 && c.slice(dot + 1) === ext;
          if (hit) visit(ch, i + 1, exact, robust && !isShort);
          else if (isShort) visit(ch, i + 1, false, false);
        }
      }
      if (n.globs !== null) {
        for (const g of n.globs) {
          if (g.test(c)) visit(g.node, i + 1, exact, robust && (!isShort || g.any));
          else if (isShort) visit(g.node, i + 1, false, false);
        }
      }
      if (n.star !== null) for (let j = i; j <= keys.length; j++) visit(n.star, j, exact, robust);
    };
    visit(this.root, 0, true, true);
    return [...found.values()];
  }
}

/** c.lastIndexOf(".") as a loop: components are short, and the builtin costs a runtime call. */
function lastDot(c: string): number {
  let i = c.length - 1;
  while (i >= 0 && c.charCodeAt(i) !== 46) i--;
  return i;
}

const ANCHOR_BITS = 2048;

/** A hash of a non-empty component's length, first and last character, below ANCHOR_BITS. */
function anchorBit(k: string): number {
  const n = k.length;
  return (n * 97 + k.charCodeAt(0) * 31 + k.charCodeAt(n - 1)) & (ANCHOR_BITS - 1);
}

/** Most literal children compared in turn rather than looked up (see Node.litKeys). */
const SMALL = 4;

function lenBit(len: number): number {
  return 1 << Math.min(len, 31);
}

function fin(n: Node): number {
  let m = n.term;
  let mid = n.termId;
  let lo = n.term !== NONE ? 0 : NONE;
  let hi = n.term !== NONE ? 0 : -1;
  const child = (c: Node, consumed: number, unbounded: boolean): void => {
    const cm = fin(c);
    if (cm < m) {
      m = cm;
      mid = c.minId;
    }
    if (!unbounded && cm < n.belowMin) {
      n.belowMin = cm;
      n.belowId = c.minId;
    }
    if (c.min === NONE) return;
    lo = Math.min(lo, c.minLen + consumed);
    hi = Math.max(hi, unbounded ? NONE : Math.min(NONE, c.maxLen + consumed));
  };
  if (n.lit) for (const c of n.lit.values()) child(c, 1, false);
  const only = n.lit?.size === 1 ? n.lit.entries().next().value : undefined;
  n.one = only ? only[0] : null;
  n.oneNode = only ? only[1] : null;
  const small = n.lit !== null && n.lit.size > 1 && n.lit.size <= SMALL;
  n.litKeys = small ? [...n.lit!.keys()] : null;
  n.litNodes = small ? [...n.lit!.values()] : null;
  n.litOnly = n.lit !== null && n.ext === null && n.globs === null && n.star === null && n.term === NONE;
  n.extOnly = n.ext !== null && n.lit === null && n.globs === null && n.star === null && n.term === NONE;
  n.leaf = n.lit === null && n.ext === null && n.globs === null && n.star === null;
  if (n.ext) for (const c of n.ext.values()) child(c, 1, false);
  if (n.globs) for (const g of n.globs) child(g.node, 1, false);
  if (n.star) child(n.star, 0, true);
  n.min = m;
  n.minId = mid;
  n.minLen = lo === NONE ? 0 : lo;
  n.maxLen = Math.max(hi, 0);
  return m;
}
