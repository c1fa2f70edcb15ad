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
import { type CanonicalResult, isFailure } from "./path-types.js";
import { upcase } from "./path-upcase.js";
import type { VolumeMap } from "./path-volumes.js";

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

function fail(error: string): CanonicalResult {
  return { error };
}

/**
 * Canonicalises a file path (or, with `pattern`, a rule pattern: `*`, `?` and `**` allowed, `..`
 * and streams not, and a pattern may start with `**` or a glob instead of a root).
 */
export function canonicalizeFile(raw: string, ctx: FileContext = {}, pattern = false): CanonicalResult {
  if (raw.length === 0) return fail("empty path");
  if (raw.length > MAX_PATH_CHARS) return fail(`path longer than ${MAX_PATH_CHARS} characters`);
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c < 0x20) return fail(`control character U+${c.toString(16).padStart(4, "0")} in path`);
  }
  const p = raw.indexOf("/") >= 0 ? raw.replace(/\//g, "\\") : raw;
  return fromRoot(p, ctx, pattern, 0);
}

function fromRoot(p: string, ctx: FileContext, pattern: boolean, depth: number): CanonicalResult {
  if (depth > 4) return fail("too many nested device prefixes");
  const c0 = p.charCodeAt(0);
  if (p.length >= 2 && p.charCodeAt(1) === 58 /* : */) {
    if (isDriveLetter(c0) || (pattern && (c0 === 42 || c0 === 63))) {
      if (p.length === 2) return fail(`drive-relative path "${p}" (write ${p}\\)`);
      if (p.charCodeAt(2) !== 92) return fail(`drive-relative path "${p}"`);
      const drive = `${String.fromCharCode(c0).toUpperCase()}:`;
      return components([drive], drive, p.slice(3), pattern, true);
    }
  }
  if (c0 === 92 /* \ */) {
    if (p.charCodeAt(1) === 92) {
      const c2 = p.charCodeAt(2);
      if ((c2 === 63 || c2 === 46) && p.charCodeAt(3) === 92)
        return dosDevice(p.slice(4), ctx, pattern, depth);
      return unc(p.slice(2), ctx, pattern, false);
    }
    return objectPath(p.slice(1), ctx, pattern, depth);
  }
  if (pattern) {
    const first = p.split("\\", 1)[0]!;
    if (first === "**" || /[*?]/.test(first)) return components([], "", p, pattern, false);
  }
  return fail(`relative path "${p}" (write a full path such as C:\\dir\\file)`);
}

function isDriveLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** The part after `\\?\`, `\\.\`, `\??\`, `\GLOBAL??\` or `\DosDevices\`. */
function dosDevice(rest: string, ctx: FileContext, pattern: boolean, depth: number): CanonicalResult {
  if (/^[A-Za-z]:$/.test(rest)) return fail(`raw volume access (${rest}) bypasses file policy`);
  if (/^[A-Za-z]:/.test(rest)) return fromRoot(rest, ctx, pattern, depth + 1);
  const head = upcase(rest.split("\\", 1)[0]!);
  const after = rest.slice(head.length + 1);
  if (head === "UNC") return unc(after, ctx, pattern, false);
  if (head === "GLOBALROOT") return objectPath(after, ctx, pattern, depth + 1);
  if (/^VOLUME\{[0-9A-F-]+\}$/.test(head))
    return mapped(head, head, rest.length > head.length, after, ctx, pattern, depth);
  if (/^(PHYSICALDRIVE\d+|HARDDISK\d+|HARDDISKVOLUME\d+|CDROM\d+|TAPE\d+)$/.test(head)) {
    return fail(`raw disk access (${head}) bypasses file policy`);
  }
  return fail(`device namespace path "${head}" is not a file on a volume`);
}

/** The part after the leading `\` of an NT object manager path. */
function objectPath(rest: string, ctx: FileContext, pattern: boolean, depth: number): CanonicalResult {
  const head = upcase(rest.split("\\", 1)[0]!);
  const after = rest.slice(head.length + 1);
  if (head === "??" || head === "GLOBAL??" || head === "DOSDEVICES")
    return dosDevice(after, ctx, pattern, depth + 1);
  if (head === "DEVICE") return device(after, ctx, pattern, depth);
  if (head === "") return fail("empty object manager path");
  return fail(`object manager path "\\${rest.split("\\", 1)[0]}" is not a file path`);
}

function device(rest: string, ctx: FileContext, pattern: boolean, depth: number): CanonicalResult {
  const name = upcase(rest.split("\\", 1)[0]!);
  const hasSep = rest.length > name.length;
  const after = rest.slice(name.length + 1);
  if (name === "MUP" || name === "LANMANREDIRECTOR" || name === "WEBDAVREDIRECTOR" || name === "RDPDR") {
    return unc(after, ctx, pattern, true);
  }
  if (/^HARDDISK\d+$/.test(name) || /^PHYSICALDRIVE\d+$/.test(name)) {
    return fail(`raw disk access (\\Device\\${name}) bypasses file policy`);
  }
  return mapped(
    `\\DEVICE\\${name}`,
    `\\Device\\${rest.split("\\", 1)[0]}`,
    hasSep,
    after,
    ctx,
    pattern,
    depth,
  );
}

function mapped(
  key: string,
  shown: string,
  hasSep: boolean,
  after: string,
  ctx: FileContext,
  pattern: boolean,
  depth: number,
): CanonicalResult {
  const root = ctx.volumes?.lookup(key);
  if (root === undefined) {
    const why = key.includes("SHADOWCOPY") ? " (a shadow copy exposes old copies of protected files)" : "";
    return fail(`volume ${shown} is not in the volume map${why}`);
  }
  if (!hasSep) return fail(`raw volume access (${shown}) bypasses file policy`);
  return fromRoot(`${root}\\${after}`, ctx, pattern, depth + 1);
}

/** `server\share\rest`, after `\\`, `\\?\UNC\` or a redirector device. */
function unc(rest: string, ctx: FileContext, pattern: boolean, redirector: boolean): CanonicalResult {
  const parts = rest.split("\\");
  let i = 0;
  while (i < parts.length && parts[i] === "") i++;
  if (redirector) while (i < parts.length && parts[i]!.startsWith(";")) i++;
  const server = stripTrailing(parts[i] ?? "");
  const share = stripTrailing(parts[i + 1] ?? "");
  if (server === "" || share === "") return fail("UNC path needs \\\\server\\share");
  if (hasBadChar(server, pattern) || hasBadChar(share, pattern) || share.includes(":"))
    return fail("invalid character in server or share name");
  const restPath = parts.slice(i + 2).join("\\");
  const S = upcase(server);
  const SH = upcase(share);
  if (/^[A-Z]\$$/.test(SH) && isLocalHost(S, ctx)) {
    const drive = `${SH[0]}:`;
    return components([drive], drive, restPath, pattern, true);
  }
  return components(["\\\\", S, SH], `\\\\${server}\\${share}`, restPath, pattern, false);
}

/** True for names of this machine: localhost, 127/8 in any inet_aton spelling, ::1, broker-given names. */
export function isLocalHost(upperHost: string, ctx: FileContext = {}): boolean {
  if (upperHost === "LOCALHOST" || upperHost === "[::1]" || upperHost === "0--1.IPV6-LITERAL.NET")
    return true;
  if (ctx.localHosts?.includes(upperHost)) return true;
  const v = parseInetAton(upperHost);
  return v !== undefined && v >>> 24 === 127;
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
  return name.slice(0, e);
}

function isReserved(upperName: string): boolean {
  const c = upperName.charCodeAt(0);
  // C(ON...), P(RN), A(UX), N(UL), L(PT)
  if (c !== 67 && c !== 80 && c !== 65 && c !== 78 && c !== 76) return false;
  const dot = upperName.indexOf(".");
  let end = dot < 0 ? upperName.length : dot;
  while (end > 0 && upperName.charCodeAt(end - 1) === 32) end--;
  if (end < 3 || end > 7) return false;
  return RESERVED.has(end === upperName.length ? upperName : upperName.slice(0, end));
}

function hasBadChar(name: string, pattern: boolean): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    // < > " | * ?
    if (c === 60 || c === 62 || c === 34 || c === 124 || (!pattern && (c === 42 || c === 63))) return true;
  }
  return false;
}

function components(
  rootKeys: string[],
  rootDisplay: string,
  rest: string,
  pattern: boolean,
  isDrive: boolean,
): CanonicalResult {
  const keys = rootKeys.slice();
  const shown: string[] = [];
  const rootLen = keys.length;
  let stream: string | undefined;
  let shorts: number[] | undefined;
  const upper = upcase(rest);
  const n = rest.length;
  let start = 0;
  while (start < n) {
    let end = rest.indexOf("\\", start);
    if (end < 0) end = n;
    if (end === start) {
      start = end + 1;
      continue;
    }
    const comp = rest.slice(start, end);
    const compStart = start;
    start = end + 1;
    if (comp === ".") continue;
    if (comp === "..") {
      if (pattern) return fail("'..' in a pattern");
      if (keys.length === rootLen) return fail("'..' climbs above the root");
      keys.pop();
      shown.pop();
      if (shorts !== undefined) {
        shorts = shorts.filter((i) => i < keys.length);
        if (shorts.length === 0) shorts = undefined;
      }
      stream = undefined;
      continue;
    }
    if (pattern && comp === "**") {
      if (keys[keys.length - 1] !== "**") {
        keys.push("**");
        shown.push("**");
      }
      continue;
    }
    let name = comp;
    const colon = comp.indexOf(":");
    if (colon >= 0) {
      if (pattern) return fail(`':' (alternate data stream) in pattern component "${comp}"`);
      name = comp.slice(0, colon);
      if (name === "") return fail(`stream "${comp}" without a file name`);
    }
    name = stripTrailing(name);
    if (name === "") return fail(`component "${comp}" is only dots and spaces`);
    if (hasBadChar(name, pattern)) return fail(`invalid character in "${comp}"`);
    let key = upper.slice(compStart, compStart + name.length);
    if (isReserved(key)) return fail(`"${comp}" is a DOS device name (${key.split(".")[0]!.trim()})`);
    if (isDrive && key === "SYSNATIVE" && keys.length === 2 && keys[1] === "WINDOWS") {
      key = "SYSTEM32";
      name = "System32";
    }
    if (!pattern && key.includes("~") && SHORT_NAME.test(key)) {
      shorts ??= [];
      shorts.push(keys.length);
    }
    keys.push(key);
    shown.push(name);
    stream = colon >= 0 ? comp.slice(colon) : undefined;
  }
  const display =
    shown.length > 0
      ? rootDisplay === ""
        ? shown.join("\\")
        : `${rootDisplay}\\${shown.join("\\")}`
      : isDrive
        ? `${rootDisplay}\\`
        : rootDisplay;
  const out: CanonicalResult = { kind: "file", keys, display };
  if (stream !== undefined) out.stream = stream;
  if (shorts !== undefined) out.shortNames = shorts;
  return out;
}

export { isFailure };
