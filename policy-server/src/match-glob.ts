/**
 * One pattern component with `*` (any run of characters, none of them `\`) and `?` (one
 * character). Components are compared upper-cased (path-upcase.ts), so globs are compiled from the
 * upper-cased pattern. Common shapes get a direct test; others a regular expression.
 */
export type ComponentTest = (upperName: string) => boolean;

export function hasGlob(component: string): boolean {
  return component.includes("*") || component.includes("?");
}

/** `*.EXT` with a plain extension: the trie indexes these by extension. Returns EXT or undefined. */
export function extensionGlob(component: string): string | undefined {
  if (!component.startsWith("*.")) return undefined;
  const ext = component.slice(2);
  return ext.length > 0 && !hasGlob(ext) && !ext.includes(".") ? ext : undefined;
}

export function compileGlob(g: string): ComponentTest {
  if (g === "*") return () => true;
  const q = g.includes("?");
  const first = g.indexOf("*");
  const last = g.lastIndexOf("*");
  if (q && first < 0) {
    // Only `?`: same length, literal characters equal (`?:` for any drive is the common one).
    const n = g.length;
    return (s) => {
      if (s.length !== n) return false;
      for (let i = 0; i < n; i++) {
        const c = g.charCodeAt(i);
        if (c !== 63 && c !== s.charCodeAt(i)) return false;
      }
      return true;
    };
  }
  if (!q && first === last) {
    const pre = g.slice(0, first);
    const suf = g.slice(first + 1);
    const min = pre.length + suf.length;
    if (suf === "") return (s) => s.startsWith(pre);
    if (pre === "") return (s) => s.endsWith(suf);
    return (s) => s.length >= min && s.startsWith(pre) && s.endsWith(suf);
  }
  let src = "";
  for (const ch of g) {
    if (ch === "*") src += "[^]*";
    else if (ch === "?") src += "[^]";
    else src += ch.replace(/[\\^$.|+()[\]{}]/g, "\\$&");
  }
  const re = new RegExp(`^${src}$`, "u");
  return (s) => re.test(s);
}

/** True when glob `g` matches every name glob `h` matches (both upper-cased); false when unsure. */
export function globCovers(g: string, h: string): boolean {
  if (g === h || g === "*") return true;
  if (!hasGlob(h)) return hasGlob(g) ? compileGlob(g)(h) : false;
  // h is a glob: g covers it if g is `PRE*` / `*SUF` and h has that literal prefix / suffix.
  if (!g.includes("?") && g.indexOf("*") === g.lastIndexOf("*") && g.includes("*")) {
    const star = g.indexOf("*");
    const pre = g.slice(0, star);
    const suf = g.slice(star + 1);
    const hLitPre = h.slice(0, Math.min(...[h.indexOf("*"), h.indexOf("?")].filter((i) => i >= 0)));
    const lastGlob = Math.max(h.lastIndexOf("*"), h.lastIndexOf("?"));
    const hLitSuf = h.slice(lastGlob + 1);
    return hLitPre.startsWith(pre) && hLitSuf.endsWith(suf) && hLitPre.length + hLitSuf.length >= 0;
  }
  return false;
}
