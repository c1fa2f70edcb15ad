/**
 * Case-insensitive comparison the way Windows does it: every UTF-16 code unit is mapped through an
 * upcase table (RtlUpcaseUnicodeChar; NTFS keeps a copy in $UpCase). The mapping is 1:1 per code
 * unit, so lengths never change: there is no full case folding ("ß" stays "ß", it does not become
 * "SS") and no Unicode normalisation (NFC and NFD spellings are different names on NTFS).
 *
 * We build the table from the simple uppercase mapping of the JavaScript engine's Unicode data,
 * keeping only mappings that are one code unit to one code unit, and excluding the two mappings
 * Windows does not make: U+0131 LATIN SMALL LETTER DOTLESS I -> "I" and U+017F LATIN SMALL LETTER
 * LONG S -> "S" (.NET's OrdinalIgnoreCase excludes them for the same reason). Surrogate halves
 * map to themselves, as in Windows. Differences between this table and a given volume's $UpCase
 * (which depends on the Windows version that formatted it) are confined to rarely used scripts.
 */
const TABLE: Uint16Array = buildTable();

function buildTable(): Uint16Array {
  const t = new Uint16Array(0x10000);
  for (let c = 0; c < 0x10000; c++) {
    t[c] = c;
    if (c >= 0xd800 && c <= 0xdfff) continue;
    const u = String.fromCharCode(c).toUpperCase();
    if (u.length === 1) t[c] = u.charCodeAt(0);
  }
  t[0x0131] = 0x0131;
  t[0x017f] = 0x017f;
  return t;
}

/** Upper-cases one UTF-16 code unit as Windows does. */
export function upcaseChar(c: number): number {
  return TABLE[c] ?? c;
}

/** Upper-cases a name as Windows does (see the module comment). Fast path for ASCII. */
export function upcase(s: string): string {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0x7f) return upcaseSlow(s);
  }
  return s.toUpperCase();
}

/** `upcase` when the caller already knows whether `s` is ASCII. */
export function upcaseScanned(s: string, ascii: boolean): string {
  return ascii ? s.toUpperCase() : upcaseSlow(s);
}

const CHUNK = 4096;
const buf = new Uint16Array(CHUNK);

function upcaseSlow(s: string): string {
  let out = "";
  for (let at = 0; at < s.length; at += CHUNK) {
    const n = Math.min(CHUNK, s.length - at);
    for (let i = 0; i < n; i++) buf[i] = TABLE[s.charCodeAt(at + i)]!;
    out += String.fromCharCode.apply(null, buf.subarray(0, n) as unknown as number[]);
  }
  return out;
}

/** Windows' case-insensitive equality of two names. */
export function equalsIgnoreCase(a: string, b: string): boolean {
  return a.length === b.length && upcase(a) === upcase(b);
}
