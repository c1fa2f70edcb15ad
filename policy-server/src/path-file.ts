/**
 * Canonical form of file paths, as the kernel reports them and as people write them. Every
 * spelling of one file maps to one `keys` list; a spelling that cannot be mapped with certainty is
 * a failure (and the request is denied with the reason). Decisions, one per line of defence:
 *
 * Roots
 * - `C:\x` is the reference form. `c:` is upper-cased. `C:` alone or `C:x` is drive-relative
 *   (depends on a process' current directory): failure. `\x` (rooted, no drive) and `x\y`
 *   (relative): failure.
 * - `\\?\C:\x`, `\\.\C:\x`, `\??\C:\x`, `\GLOBAL??\C:\x`, `\DosDevices\C:\x`,
 *   `\\?\GLOBALROOT\Device\...`, `\??\GLOBALROOT\...`: the same object as `C:\x`.
 * - `\Device\HarddiskVolumeN\x`: looked up in the volume map (from the broker: N -> `C:`, or a
 *   folder for volumes mounted in a folder). Not in the map: failure (we cannot know what it is;
 *   a shadow copy `\Device\HarddiskVolumeShadowCopyN` exposes old copies of protected files).
 *   `\\?\Volume{GUID}\x` likewise.
 * - A volume or disk itself (`\\.\C:`, `\Device\HarddiskVolume3` with no trailing separator,
 *   `\\.\PhysicalDrive0`, `\Device\Harddisk0\DR0`): failure, because raw sector access bypasses
 *   every file rule.
 * - UNC: `\\server\share\x`, `\\?\UNC\server\share\x`, `\??\UNC\...`, `\Device\Mup\server\share\x`,
 *   `\Device\LanmanRedirector\...`, `\Device\WebDavRedirector\...`; components starting with `;`
 *   right after the redirector (`\Device\Mup\;LanmanRedirector\;Z:000...\server\share`) are
 *   provider prefixes and are dropped. Root keys are `\\`, SERVER, SHARE.
 * - Loopback admin shares reach the local disk through the SMB server (which runs as System,
 *   outside the agent's session): `\\localhost\C$\x`, `\\127.0.0.1\c$\x` (any inet_aton spelling
 *   of 127/8), `\\[::1]`, `\\0--1.ipv6-literal.net\` and host names the broker reports as this
 *   machine are mapped to `C:\x`. Other shares on this machine stay UNC paths (their folder is not
 *   known here); write rules for `\\localhost\**` if that matters.
 * - Other device-namespace paths (`\\.\pipe\x`, `\Device\NamedPipe\x`, `\SystemRoot\x`): failure.
 *
 * Components
 * - `/` is a separator (Win32 converts it); repeated separators collapse; a trailing one is dropped.
 * - `.` is dropped and `..` removes the previous component; `..` above the root (the drive, or
 *   server and share) is a failure. Patterns may not contain `..`.
 * - Trailing dots and spaces are stripped from every component, as Win32 does. An NT name that
 *   really ends with one (created through `\\?\`) is therefore treated as the same object as the
 *   stripped name: the stricter choice, since rules are written for the Win32 name. A component
 *   made only of dots and spaces (`...`, `. .`) is a failure.
 * - Alternate data streams and attribute types (`file.txt::$DATA`, `file.txt:s`, `file:s:$DATA`,
 *   `dir::$INDEX_ALLOCATION`) name the file or directory they belong to: the stream is stripped
 *   (and reported in `stream`). A stream with no name before it is a failure.
 * - NUL and control characters (U+0000..U+001F) and `<>"|*?` are invalid in names: failure.
 * - DOS device names (CON, PRN, AUX, NUL, COM0-9, LPT0-9, COM¹²³, LPT¹²³, CONIN$, CONOUT$, with
 *   or without an extension or trailing spaces) open a device under Win32, not the file: failure.
 * - `C:\Windows\Sysnative` is the WOW64 alias of `C:\Windows\System32`: mapped to it.
 * - Case: compared with Windows' upcase table (path-upcase.ts), not ASCII-only; no Unicode
 *   normalisation (NTFS does none).
 * - 8.3 short names (`PROGRA~1`, `SSH~1`) cannot be expanded without the volume. Components that
 *   look like one are flagged in `shortNames`; the engine then matches conservatively (a stricter
 *   rule that could match the long name wins; see engine-match.ts).
 * - Links (symbolic links, junctions, hard links) are not resolved here: the kernel re-issues the
 *   open with the target's name after a reparse, so the target is checked on its own.
 */
import { type CanonicalResult, componentBounds, isFailure } from "./path-types.js";
import { upcaseScanned } from "./path-upcase.js";
import { type VolumeMap, volumeNumber } from "./path-volumes.js";

export interface FileContext {
  volumes?: VolumeMap | undefined;
  /** Upper-case host names that are this machine (besides localhost and loopback addresses). */
  localHosts?: readonly string[] | undefined;
}

const MAX_PATH_CHARS = 32767;
const RESERVED = new Set([
  "CON",
  "PRN",
  "AUX",
  "NUL",
  "CONIN$",
  "CONOUT$",
  ...[..."0123456789\u00b9\u00b2\u00b3"].flatMap((d) => [`COM${d}`, `LPT${d}`]),
]);
const SHORT_NAME = /^[^~.\s]{1,6}~[0-9]{1,6}(\.[^.]{1,3})?$/;
const BS = 92; // \

function fail(error: string): CanonicalResult {
  return { error };
}

/**
 * How it runs: one scan checks for control characters and non-ASCII, one upper-cased copy of the
 * whole path is made, and every step below works on offsets into the path and that copy, so a
 * path costs one slice per component key plus the display string, whatever its prefix.
 */
export function canonicalizeFile(raw: string, ctx: FileContext = {}, pattern = false): CanonicalResult {
  const n = raw.length;
  if (n === 0) return fail("empty path");
  if (n > MAX_PATH_CHARS) return fail(`path longer than ${MAX_PATH_CHARS} characters`);
  let ascii = true;
  let flags = 0;
  // Most paths have none of the characters that need attention: one native scan says so.
  if (RARE.test(raw)) {
    for (let i = 0; i < n; i++) {
      const c = raw.charCodeAt(i);
      if (c > 0x7f) ascii = false;
      else {
        const f = CLASS[c]!;
        if (f === CONTROL) return fail(`control character U+${c.toString(16).padStart(4, "0")} in path`);
        flags |= f;
      }
    }
  }
  const p = (flags & SLASH) !== 0 ? raw.replace(/\//g, "\\") : raw;
  anyBad = (flags & (pattern ? BAD : BAD | GLOB)) !== 0;
  anyTilde = (flags & TILDE) !== 0;
  return fromRoot(p, upcaseScanned(p, ascii), 0, ctx, pattern, 0);
}

// Character classes for the first scan; what it finds lets `components` skip its own scans.
const CONTROL = 1;
const SLASH = 2;
const BAD = 8; // < > " |
const GLOB = 16; // * ?
const TILDE = 32;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const RARE = /[\x00-\x1f/<>"|*?~\u0080-\uffff]/;
const CLASS = new Uint8Array(128);
CLASS.fill(CONTROL, 0, 0x20);
CLASS[47] = SLASH;
for (const c of '<>"|') CLASS[c.charCodeAt(0)] = BAD;
CLASS[42] = CLASS[63] = GLOB;
CLASS[126] = TILDE;
/** Of the path being canonicalised: any invalid character, any '~'. */
let anyBad = false;
let anyTilde = false;

/** End of the component starting at `at` (the next `\` or the end). */
function segEnd(p: string, at: number): number {
  const e = p.indexOf("\\", at);
  return e < 0 ? p.length : e;
}

/** Where the rest starts after the component ending at `e` ("" when there is no separator). */
function after(p: string, e: number): number {
  return e < p.length ? e + 1 : p.length;
}

const DRIVES: string[] = [];
for (let c = 65; c <= 90; c++) {
  DRIVES[c] = DRIVES[c + 32] = `${String.fromCharCode(c)}:`;
}

function fromRoot(
  p: string,
  up: string,
  at: number,
  ctx: FileContext,
  pattern: boolean,
  depth: number,
): CanonicalResult {
  if (depth > 4) return fail("too many nested device prefixes");
  const rem = p.length - at;
  const c0 = p.charCodeAt(at);
  if (rem >= 2 && p.charCodeAt(at + 1) === 58 /* : */) {
    if (isDriveLetter(c0) || (pattern && (c0 === 42 || c0 === 63))) {
      if (rem === 2) return fail(`drive-relative path "${p.slice(at)}" (write ${p.slice(at)}\\)`);
      if (p.charCodeAt(at + 2) !== BS) return fail(`drive-relative path "${p.slice(at)}"`);
      const drive = DRIVES[c0] ?? `${String.fromCharCode(c0)}:`;
      return components(p, up, at + 3, drive, drive, pattern, true);
    }
  }
  if (c0 === BS) {
    if (p.charCodeAt(at + 1) === BS) {
      const c2 = p.charCodeAt(at + 2);
      if ((c2 === 63 || c2 === 46) && p.charCodeAt(at + 3) === BS)
        return dosDevice(p, up, at + 4, ctx, pattern, depth);
      return unc(p, up, at + 2, ctx, pattern, false);
    }
    return objectPath(p, up, at + 1, ctx, pattern, depth);
  }
  if (pattern) {
    const first = p.slice(at, segEnd(p, at));
    if (first === "**" || /[*?]/.test(first)) return components(p, up, at, null, "", pattern, false);
  }
  return fail(`relative path "${p.slice(at)}" (write a full path such as C:\\dir\\file)`);
}

/** name[at..] is one or more ASCII digits. */
function digitsFrom(name: string, at: number): boolean {
  if (name.length <= at) return false;
  for (let i = at; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function isDriveLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** The part after `\\?\`, `\\.\`, `\??\`, `\GLOBAL??\` or `\DosDevices\`. */
function dosDevice(
  p: string,
  up: string,
  at: number,
  ctx: FileContext,
  pattern: boolean,
  depth: number,
): CanonicalResult {
  const rem = p.length - at;
  if (rem >= 2 && isDriveLetter(p.charCodeAt(at)) && p.charCodeAt(at + 1) === 58) {
    if (rem === 2) return fail(`raw volume access (${p.slice(at)}) bypasses file policy`);
    return fromRoot(p, up, at, ctx, pattern, depth + 1);
  }
  const e = segEnd(p, at);
  const head = up.slice(at, e);
  const next = after(p, e);
  if (head === "UNC") return unc(p, up, next, ctx, pattern, false);
  if (head === "GLOBALROOT") return objectPath(p, up, next, ctx, pattern, depth + 1);
  if (/^VOLUME\{[0-9A-F-]+\}$/.test(head)) {
    const root = ctx.volumes?.lookup(head);
    return mapped(root, head, head, e < p.length, p, up, next, ctx, pattern, depth);
  }
  // HarddiskVolumeN here is the \GLOBAL?? link to \Device\HarddiskVolumeN: the same volume (and
  // without a path after it, the volume itself).
  if (/^HARDDISKVOLUME\d+$/.test(head)) return device(p, up, at, ctx, pattern, depth + 1);
  if (/^(PHYSICALDRIVE\d+|HARDDISK\d+|CDROM\d+|TAPE\d+)$/.test(head)) {
    return fail(`raw disk access (${head}) bypasses file policy`);
  }
  return fail(`device namespace path "${head}" is not a file on a volume`);
}

/** The part after the leading `\` of an NT object manager path. */
function objectPath(
  p: string,
  up: string,
  at: number,
  ctx: FileContext,
  pattern: boolean,
  depth: number,
): CanonicalResult {
  const e = segEnd(p, at);
  const len = e - at;
  if (len === 6 && up.startsWith("DEVICE", at)) return device(p, up, after(p, e), ctx, pattern, depth);
  if (
    (len === 2 && up.startsWith("??", at)) ||
    (len === 8 && up.startsWith("GLOBAL??", at)) ||
    (len === 10 && up.startsWith("DOSDEVICES", at))
  )
    return dosDevice(p, up, after(p, e), ctx, pattern, depth + 1);
  if (len === 0) return fail("empty object manager path");
  return fail(`object manager path "\\${p.slice(at, e)}" is not a file path`);
}

function device(
  p: string,
  up: string,
  at: number,
  ctx: FileContext,
  pattern: boolean,
  depth: number,
): CanonicalResult {
  const e = segEnd(p, at);
  const next = after(p, e);
  // HarddiskVolume<N> (N without a leading zero), the name most requests carry: no slice, no hash.
  const vol = volumeNumber(up, at, e);
  if (vol > 0) {
    const root = ctx.volumes?.lookupVolumeNumber(vol);
    if (root !== undefined)
      return mapped(root, "", "", e < p.length, p, up, next, ctx, pattern, depth, at, e);
  }
  const name = up.slice(at, e);
  if (name === "MUP" || name === "LANMANREDIRECTOR" || name === "WEBDAVREDIRECTOR" || name === "RDPDR") {
    return unc(p, up, next, ctx, pattern, true);
  }
  // HARDDISK<digits> or PHYSICALDRIVE<digits> (HARDDISKVOLUME3 is a volume, not a disk).
  if (
    (name.startsWith("HARDDISK") && digitsFrom(name, 8)) ||
    (name.startsWith("PHYSICALDRIVE") && digitsFrom(name, 13))
  ) {
    return fail(`raw disk access (\\Device\\${name}) bypasses file policy`);
  }
  const root = ctx.volumes?.lookupDevice(name);
  return mapped(root, name, "", e < p.length, p, up, next, ctx, pattern, depth, at, e);
}

/**
 * A volume from the volume map. `root` is its DOS root (a drive, or a folder for mount points);
 * `key`/`shown` name the device in messages (`\Device\<original case>` when shownAt/shownEnd).
 */
function mapped(
  root: string | undefined,
  key: string,
  shown: string,
  hasSep: boolean,
  p: string,
  up: string,
  at: number,
  ctx: FileContext,
  pattern: boolean,
  depth: number,
  shownAt = -1,
  shownEnd = -1,
): CanonicalResult {
  if (root === undefined) {
    const what = shownAt >= 0 ? `\\Device\\${p.slice(shownAt, shownEnd)}` : shown;
    const why = key.includes("SHADOWCOPY") ? " (a shadow copy exposes old copies of protected files)" : "";
    return fail(`volume ${what} is not in the volume map${why}`);
  }
  if (!hasSep) {
    const what = shownAt >= 0 ? `\\Device\\${p.slice(shownAt, shownEnd)}` : shown;
    return fail(`raw volume access (${what}) bypasses file policy`);
  }
  if (root.length === 2) {
    // A drive: the rest is read in place (same as reading "<drive>\<rest>" from the top).
    if (depth + 1 > 4) return fail("too many nested device prefixes");
    const drive = DRIVES[root.charCodeAt(0)] ?? root;
    return components(p, up, at, drive, drive, pattern, true);
  }
  // A folder (mount point): the volume's root is the folder, so `..` cannot climb out of it, as it
  // cannot above a drive (the folder's name is the volume map's, canonicalised as a path).
  const [bad, tilde] = [anyBad, anyTilde]; // of `p`, which canonicalising the folder's name resets
  const folder = canonicalizeFile(root, ctx);
  [anyBad, anyTilde] = [bad, tilde];
  if (isFailure(folder)) return fail(`volume map: mount folder ${root}: ${folder.error}`);
  return components(p, up, at, folder.keys, folder.display, pattern, false);
}

/** `server\share\rest`, after `\\`, `\\?\UNC\` or a redirector device. */
function unc(
  p: string,
  up: string,
  at: number,
  ctx: FileContext,
  pattern: boolean,
  redirector: boolean,
): CanonicalResult {
  const n = p.length;
  // Components: empty ones before the server are skipped, then (redirectors) provider prefixes.
  let i = at;
  while (i < n && p.charCodeAt(i) === BS) i++;
  if (redirector) {
    while (i < n && p.charCodeAt(i) === 59 /* ; */) {
      const e = segEnd(p, i);
      i = e < n ? e + 1 : n + 1;
    }
  }
  let server = "";
  let share = "";
  let shareAt = n;
  let rest = n;
  if (i < n) {
    const serverEnd = segEnd(p, i);
    server = stripTrailing(p.slice(i, serverEnd));
    if (serverEnd < n) {
      shareAt = serverEnd + 1;
      const shareEnd = segEnd(p, shareAt);
      share = stripTrailing(p.slice(shareAt, shareEnd));
      rest = after(p, shareEnd);
    }
  }
  if (server === "" || share === "") return fail("UNC path needs \\\\server\\share");
  if (hasBadChar(server, pattern) || hasBadChar(share, pattern) || share.includes(":"))
    return fail("invalid character in server or share name");
  const S = up.slice(i, i + server.length);
  const SH = up.slice(shareAt, shareAt + share.length);
  if (
    SH.length === 2 &&
    SH.charCodeAt(1) === 36 /* $ */ &&
    isUpperAscii(SH.charCodeAt(0)) &&
    isLocalHost(S, ctx)
  ) {
    const drive = `${SH[0]}:`;
    return components(p, up, rest, drive, drive, pattern, true);
  }
  // ADMIN$ is %SystemRoot% and PRINT$ the printer drivers under it: local folders whose drive and
  // name this engine cannot know, reached through the SMB server.
  if ((SH === "ADMIN$" || SH === "PRINT$") && !pattern && isLocalHost(S, ctx))
    return fail(
      `\\\\${server}\\${share} is a folder of this machine's Windows directory: use its local path`,
    );
  return components(p, up, rest, ["\\\\", S, SH], `\\\\${server}\\${share}`, pattern, false);
}

function isUpperAscii(c: number): boolean {
  return c >= 65 && c <= 90;
}

/** True for names of this machine: localhost, 127/8 in any inet_aton spelling, ::1, broker-given names. */
export function isLocalHost(upperHost: string, ctx: FileContext = {}): boolean {
  if (upperHost === "LOCALHOST") return true;
  if (ctx.localHosts?.includes(upperHost)) return true;
  const v6 = ipv6Of(upperHost);
  if (v6 !== undefined) return isLoopbackV6(v6);
  const v = parseInetAton(upperHost);
  return v !== undefined && v >>> 24 === 127;
}

/** The IPv6 address a UNC server names, as the URL parser writes it (`[::1]`, upper case): `[addr]`
 * or `addr.ipv6-literal.net` (where `-` stands for `:` and `s` introduces a zone). Undefined when
 * it names none. */
function ipv6Of(upperHost: string): string | undefined {
  let a: string;
  if (upperHost.startsWith("[") && upperHost.endsWith("]")) a = upperHost.slice(1, -1);
  else if (upperHost.endsWith(".IPV6-LITERAL.NET")) a = upperHost.slice(0, -17).replace(/-/g, ":");
  else return undefined;
  try {
    return new URL(`http://[${a.replace(/[S%].*$/, "")}]/`).hostname.toUpperCase();
  } catch {
    return undefined;
  }
}

/** ::1, or an IPv4-mapped or -compatible loopback address (::ffff:127.x.x.x, ::127.x.x.x). */
function isLoopbackV6(h: string): boolean {
  return h === "[::1]" || /^\[::(FFFF:)?7F[0-9A-F]{2}:[0-9A-F]{1,4}\]$/.test(h);
}

function parseInetAton(s: string): number | undefined {
  const parts = s.split(".");
  if (parts.length > 4) return undefined;
  const nums: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0X[0-9A-F]+$/.test(p)) n = Number.parseInt(p.slice(2), 16);
    else if (/^0[0-7]*$/.test(p)) n = Number.parseInt(p, 8);
    else if (/^[1-9][0-9]*$/.test(p)) n = Number.parseInt(p, 10);
    else return undefined;
    nums.push(n);
  }
  const last = nums.length - 1;
  let v = 0;
  for (let i = 0; i < last; i++) {
    if (nums[i]! > 255) return undefined;
    v = v * 256 + nums[i]!;
  }
  const room = 4 - last;
  if (nums[last]! >= 256 ** room) return undefined;
  return v * 256 ** room + nums[last]!;
}

function stripTrailing(name: string): string {
  let e = name.length;
  while (e > 0 && (name.charCodeAt(e - 1) === 46 || name.charCodeAt(e - 1) === 32)) e--;
  return e === name.length ? name : name.slice(0, e);
}

/** Is up[at, end) (an upper-cased name) a DOS device name? Reads the whole upper-cased path, not a
 * slice of it, so the common case (first letters rule it out) looks at one flat string. */
function isReserved(up: string, at: number, end: number): boolean {
  // C(ON...), P(RN), A(UX), N(UL), L(PT)
  const c1 = end - at > 1 ? up.charCodeAt(at + 1) : 0;
  switch (up.charCodeAt(at)) {
    case 67:
      if (c1 !== 79) return false;
      break;
    case 80:
      if (c1 !== 82) return false;
      break;
    case 65:
    case 78:
      if (c1 !== 85) return false;
      break;
    case 76:
      if (c1 !== 80) return false;
      break;
    default:
      return false;
  }
  const dot = up.indexOf(".", at);
  let stop = dot < 0 || dot > end ? end : dot;
  while (stop > at && up.charCodeAt(stop - 1) === 32) stop--;
  if (stop - at < 3 || stop - at > 7) return false;
  return RESERVED.has(up.slice(at, stop));
}

/** < > " | (and * ? outside patterns). */
function isBadChar(c: number, pattern: boolean): boolean {
  return c < 63
    ? c === 60 || c === 62 || c === 34 || (c === 42 && !pattern)
    : c === 124 || (c === 63 && !pattern);
}

function hasBadChar(name: string, pattern: boolean): boolean {
  for (let i = 0; i < name.length; i++) if (isBadChar(name.charCodeAt(i), pattern)) return true;
  return false;
}

function components(
  p: string,
  up: string,
  start: number,
  root: string | readonly string[] | null,
  rootDisplay: string,
  pattern: boolean,
  isDrive: boolean,
): CanonicalResult {
  // Filled by push from empty: a literal or a slice would make a backing store of the root's size,
  // copied into a larger one at the first push.
  const keys: string[] = [];
  if (typeof root === "string") keys.push(root);
  else if (root !== null) for (let i = 0; i < root.length; i++) keys.push(root[i]!);
  const rootLen = keys.length;
  let stream: string | undefined;
  let shorts: number[] | undefined;
  const n = p.length;
  const { starts, ends } = componentBounds(n - start + 1);
  // count: kept components; clean: they are contiguous in p, one separator apart, unchanged, so the
  // display is one slice of p. ends[k] = -1 marks "System32" (Sysnative).
  let count = 0;
  let clean = true;
  let expect = start;
  let s = start;
  // First ':' at or after the current component (-1: none): the stream separator when it falls
  // inside the component; found with indexOf, which is cheaper than scanning for it in JS.
  let nextColon = p.indexOf(":", start);
  while (s < n) {
    let e = p.indexOf("\\", s);
    if (e < 0) e = n;
    let colon = -1;
    if (nextColon >= 0 && nextColon < e) {
      colon = nextColon;
      nextColon = p.indexOf(":", e);
    }
    const len = e - s;
    if (len === 0) {
      s = e + 1;
      continue;
    }
    const at = s;
    s = e + 1;
    const c0 = p.charCodeAt(at);
    if (c0 === 46 && len <= 2) {
      if (len === 1) continue;
      if (p.charCodeAt(at + 1) === 46) {
        if (pattern) return fail("'..' in a pattern");
        if (keys.length === rootLen) return fail("'..' climbs above the root");
        keys.pop();
        count--;
        clean = false;
        if (shorts !== undefined) {
          shorts = shorts.filter((i) => i < keys.length);
          if (shorts.length === 0) shorts = undefined;
        }
        stream = undefined;
        continue;
      }
    }
    if (pattern && len === 2 && c0 === 42 && p.charCodeAt(at + 1) === 42) {
      if (keys[keys.length - 1] !== "**") {
        if (at !== expect) clean = false;
        keys.push("**");
        starts[count] = at;
        ends[count] = e;
        count++;
        expect = s;
      } else clean = false;
      continue;
    }
    // Invalid characters of the name before the stream separator (when the first scan saw any).
    let bad = false;
    if (anyBad) {
      const end = colon >= 0 ? colon : e;
      for (let i = at; i < end; i++) if (isBadChar(p.charCodeAt(i), pattern)) bad = true;
    }
    let nameEnd = e;
    if (colon >= 0) {
      if (pattern) return fail(`':' (alternate data stream) in pattern component "${p.slice(at, e)}"`);
      nameEnd = colon;
      if (nameEnd === at) return fail(`stream "${p.slice(at, e)}" without a file name`);
    }
    while (nameEnd > at && (p.charCodeAt(nameEnd - 1) === 46 || p.charCodeAt(nameEnd - 1) === 32)) nameEnd--;
    if (nameEnd === at) return fail(`component "${p.slice(at, e)}" is only dots and spaces`);
    if (bad) return fail(`invalid character in "${p.slice(at, e)}"`);
    let key = up.slice(at, nameEnd);
    if (isReserved(up, at, nameEnd))
      return fail(`"${p.slice(at, e)}" is a DOS device name (${key.split(".")[0]!.trim()})`);
    if (nameEnd !== e || at !== expect) clean = false;
    starts[count] = at;
    ends[count] = nameEnd;
    if (isDrive && nameEnd - at === 9 && key === "SYSNATIVE" && keys.length === 2 && keys[1] === "WINDOWS") {
      key = "SYSTEM32";
      ends[count] = -1;
      clean = false;
    }
    if (!pattern && anyTilde && key.includes("~") && SHORT_NAME.test(key)) {
      shorts ??= [];
      shorts.push(keys.length);
    }
    keys.push(key);
    count++;
    expect = s;
    stream = colon >= 0 ? p.slice(colon, e) : undefined;
  }
  let display: string;
  if (count > 0) {
    let body: string;
    if (clean) {
      // The path already spells the root as displayed (`C:\...`): one slice, often p itself.
      const pre = start - rootDisplay.length - 1;
      if (pre >= 0 && rootDisplay !== "" && p.charCodeAt(start - 1) === BS && p.startsWith(rootDisplay, pre))
        return result(keys, p.slice(pre, ends[count - 1]!), stream, shorts);
      body = p.slice(start, ends[count - 1]!);
    } else {
      body = "";
      for (let k = 0; k < count; k++) {
        if (k > 0) body += "\\";
        body += ends[k] === -1 ? "System32" : p.slice(starts[k]!, ends[k]!);
      }
    }
    display = rootDisplay === "" ? body : `${rootDisplay}\\${body}`;
  } else display = isDrive ? `${rootDisplay}\\` : rootDisplay;
  return result(keys, display, stream, shorts);
}

function result(
  keys: string[],
  display: string,
  stream: string | undefined,
  shorts: number[] | undefined,
): CanonicalResult {
  const out: CanonicalResult = { kind: "file", keys, display };
  if (stream !== undefined) out.stream = stream;
  if (shorts !== undefined) out.shortNames = shorts;
  return out;
}

export { isFailure };
