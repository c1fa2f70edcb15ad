/**
 * Canonical form of registry key paths. Keys are `HKLM`, then components; or `HKU`, the SID (or
 * `SID_CLASSES`), then components; or `\REGISTRY\<OTHER>` (application hives `\REGISTRY\A`, silos).
 * Decisions:
 * - Roots: `\REGISTRY\MACHINE` = HKLM = HKEY_LOCAL_MACHINE; `\REGISTRY\USER` = HKU = HKEY_USERS;
 *   HKCU = HKEY_CURRENT_USER = `HKU\<session user SID>` (no SID known: failure);
 *   HKCC = HKEY_CURRENT_CONFIG = `HKLM\SYSTEM\CurrentControlSet\Hardware Profiles\Current`;
 *   HKEY_CURRENT_USER_LOCAL_SETTINGS = `HKU\<SID>_Classes\Local Settings`. Also accepted:
 *   regedit's `Computer\HKEY_...`, PowerShell's `HKLM:\` and `Registry::HKEY_...`.
 * - HKCR (HKEY_CLASSES_ROOT) is a merged view of `HKLM\SOFTWARE\Classes` and
 *   `HKU\<SID>_Classes`. The kernel always reports the real key. A request written with HKCR is
 *   read as `HKLM\SOFTWARE\Classes\...`; a rule pattern written with HKCR covers both hives.
 * - `HKU\<SID>\Software\Classes` is a link to `HKU\<SID>_Classes`: mapped to the latter (what the
 *   kernel reports). `HKU\.DEFAULT` is the LocalSystem hive `HKU\S-1-5-18`.
 * - WOW64 views: `Wow6432Node` (and ARM's `WowAA32Node`) right under `HKLM\SOFTWARE`,
 *   `HKLM\SOFTWARE\Classes`, `HKU\<SID>\SOFTWARE` or `HKU\<SID>_Classes` is dropped, so the
 *   32-bit view of a key gets the decision of the 64-bit key (32-bit Run keys run programs too).
 * - `HKLM\SYSTEM\ControlSetNNN` and `CurrentControlSet` (a link to the current one) are all
 *   mapped to `CurrentControlSet`: which set is current is per machine, and changing a non-current
 *   set (e.g. LastKnownGood) is persistence as well.
 * - Key names may contain `/` and any character but `\`; they are not Win32 file names, so no
 *   trailing-dot stripping, no `/` conversion. Repeated separators collapse. NUL and control
 *   characters are a failure (native-API "hidden" keys with embedded NULs). `.` and `..` are a
 *   failure: the configuration manager does not give them a path meaning, so resolving them
 *   would name another key than the one opened.
 * - Case: Windows' upcase table (path-upcase.ts).
 */
import { type CanonicalResult, componentBounds } from "./path-types.js";
import { upcase, upcaseScanned } from "./path-upcase.js";

export interface RegistryContext {
  /** The session user's SID, for HKCU. */
  userSid?: string | undefined;
}

const SID = /^S-1-\d+(-\d+)+$/i;
const MAX_KEY_NAME = 255;
const BS = 92; // \
const POWERSHELL = /(Microsoft\.PowerShell\.Core\\)?Registry::/iy;
const REGEDIT = /Computer\\HKEY_/iy;
/** Control characters and non-ASCII: the only ones the first scan looks for. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const RARE = /[\x00-\x1f\u0080-\uffff]/;

function fail(error: string): CanonicalResult {
  return { error };
}

export function isSid(s: string): boolean {
  return SID.test(s);
}

const HKLM = ["HKLM"];
const HKU = ["HKU"];
const HKCR_KEYS = ["HKLM", "SOFTWARE", "CLASSES"];
const HKCR_SHOWN = ["HKLM", "SOFTWARE", "Classes"];
const HKCC_KEYS = ["HKLM", "SYSTEM", "CURRENTCONTROLSET", "HARDWARE PROFILES", "CURRENT"];
const HKCC_SHOWN = ["HKLM", "SYSTEM", "CurrentControlSet", "Hardware Profiles", "Current"];
const NONE: string[] = [];

/**
 * One scan for control characters and non-ASCII, one upper-cased copy, then offsets: the
 * components are sliced once for their keys, and the display is one slice when the path needs no
 * alias and has no empty components.
 */
export function canonicalizeRegistry(
  raw: string,
  ctx: RegistryContext = {},
  pattern = false,
): CanonicalResult {
  return canonicalizeRegistryFor(raw, ctx.userSid, pattern);
}

/** canonicalizeRegistry with the session's SID passed directly (the engine's hot path). */
export function canonicalizeRegistryFor(
  raw: string,
  ctxSid: string | undefined,
  pattern = false,
): CanonicalResult {
  const n = raw.length;
  if (n === 0) return fail("empty registry path");
  if (n > 32767) return fail("registry path too long");
  let ascii = true;
  if (RARE.test(raw)) {
    for (let i = 0; i < n; i++) {
      const c = raw.charCodeAt(i);
      if (c < 0x20) return fail(`control character U+${c.toString(16).padStart(4, "0")} in registry path`);
      if (c > 0x7f) ascii = false;
    }
  }
  let at = 0;
  const c0 = raw.charCodeAt(0) | 0x20;
  if (c0 === 0x72 /* r */ || c0 === 0x6d /* m */) {
    POWERSHELL.lastIndex = 0;
    if (POWERSHELL.test(raw)) at = POWERSHELL.lastIndex;
  }
  if ((raw.charCodeAt(at) | 0x20) === 0x63 /* c */) {
    REGEDIT.lastIndex = at;
    if (REGEDIT.test(raw)) at += 9;
  }
  const up = upcaseScanned(raw, ascii);
  let rootKeys: readonly string[];
  let rootShown: readonly string[];
  let start: number;
  if (raw.charCodeAt(at) === BS) {
    const e1 = segEnd(raw, at + 1);
    const p2 = e1 + 1;
    const e2 = p2 <= n ? segEnd(raw, p2) : n;
    if (e1 - at - 1 !== 8 || !up.startsWith("REGISTRY", at + 1) || p2 > n || e2 === p2) {
      return fail(`"${raw}" is not a registry path (\\REGISTRY\\MACHINE\\... or HKLM\\...)`);
    }
    const r = up.slice(p2, e2);
    if (r === "MACHINE") rootKeys = rootShown = HKLM;
    else if (r === "USER") rootKeys = rootShown = HKU;
    else {
      rootKeys = [`\\REGISTRY\\${r}`];
      rootShown = [`\\REGISTRY\\${raw.slice(p2, e2)}`];
    }
    start = e2 < n ? e2 + 1 : n;
  } else {
    const e0 = segEnd(raw, at);
    let headEnd = e0;
    if (headEnd > at && raw.charCodeAt(headEnd - 1) === 58 /* : */) headEnd--;
    const head = up.slice(at, headEnd);
    start = e0 < n ? e0 + 1 : n;
    switch (head) {
      case "HKLM":
      case "HKEY_LOCAL_MACHINE":
        rootKeys = rootShown = HKLM;
        break;
      case "HKU":
      case "HKEY_USERS":
        rootKeys = rootShown = HKU;
        break;
      case "HKCU":
      case "HKEY_CURRENT_USER":
      case "HKEY_CURRENT_USER_LOCAL_SETTINGS": {
        const sid = ctxSid && SID.test(ctxSid) ? ctxSid : undefined;
        if (!sid) {
          return fail(
            ctxSid
              ? `invalid user SID "${ctxSid}" for ${head}`
              : `${head} needs the session's user SID (none given)`,
          );
        }
        if (head === "HKEY_CURRENT_USER_LOCAL_SETTINGS") {
          rootKeys = ["HKU", `${upcase(sid)}_CLASSES`, "LOCAL SETTINGS"];
          rootShown = ["HKU", `${sid}_Classes`, "Local Settings"];
        } else {
          rootKeys = ["HKU", upcase(sid)];
          rootShown = ["HKU", sid];
        }
        break;
      }
      case "HKCR":
      case "HKEY_CLASSES_ROOT":
        rootKeys = HKCR_KEYS;
        rootShown = HKCR_SHOWN;
        break;
      case "HKCC":
      case "HKEY_CURRENT_CONFIG":
        rootKeys = HKCC_KEYS;
        rootShown = HKCC_SHOWN;
        break;
      default:
        if (pattern && (head === "**" || /[*?]/.test(head))) {
          rootKeys = rootShown = NONE;
          start = at;
          break;
        }
        return fail(
          `unknown registry root "${raw.slice(at, e0)}" (use HKLM, HKCU, HKU, HKCR, HKCC or \\REGISTRY\\...)`,
        );
    }
  }
  const keys: string[] = []; // filled by push from empty (see components in path-file.ts)
  for (let i = 0; i < rootKeys.length; i++) keys.push(rootKeys[i]!);
  const { starts, ends } = componentBounds(n - start + 1);
  let count = 0;
  let clean = true;
  let expect = start;
  let s = start;
  while (s < n) {
    let e = raw.indexOf("\\", s);
    if (e < 0) e = n;
    const len = e - s;
    const at2 = s;
    s = e + 1;
    if (len === 0) continue;
    if (raw.charCodeAt(at2) === 46 && (len === 1 || (len === 2 && raw.charCodeAt(at2 + 1) === 46)))
      return fail(`"${raw.slice(at2, e)}" in a registry path is ambiguous`);
    if (len > MAX_KEY_NAME) return fail(`registry key name longer than ${MAX_KEY_NAME} characters`);
    if (pattern && len === 2 && raw.charCodeAt(at2) === 42 && raw.charCodeAt(at2 + 1) === 42) {
      if (keys[keys.length - 1] === "**") {
        clean = false;
        continue;
      }
      keys.push("**");
    } else keys.push(up.slice(at2, e));
    if (at2 !== expect) clean = false;
    starts[count] = at2;
    ends[count] = e;
    count++;
    expect = s;
  }
  // HKLM\SYSTEM\ControlSetNNN is CurrentControlSet: one name replaced in place, the display built
  // from slices (HKCC's root already names CurrentControlSet). The other aliases drop or merge
  // names: needsAlias / applyAliases.
  let renamed = -1;
  let profile = -1;
  if (
    rootKeys === HKLM &&
    count >= 2 &&
    keys[1] === "SYSTEM" &&
    (keys[2] === "CURRENTCONTROLSET" || isControlSet(keys[2]!))
  ) {
    keys[2] = "CURRENTCONTROLSET";
    renamed = 1;
    clean = false;
    // Hardware Profiles\Current (HKCC) is a link to the profile in use, which the kernel reports by
    // its number (0001 on current Windows): one name for both.
    if (keys[3] === "HARDWARE PROFILES" && keys[4] !== undefined && /^\d{4}$/.test(keys[4])) {
      keys[4] = "CURRENT";
      profile = 3;
    }
  } else if (needsAlias(keys)) {
    const shown = rootShown.slice();
    for (let k = 0; k < count; k++) shown.push(raw.slice(starts[k]!, ends[k]!));
    applyAliases(keys, shown);
    return { kind: "registry", keys, display: shown.join("\\") };
  }
  let display = rootShown.length === 1 ? rootShown[0]! : rootShown.join("\\");
  if (count > 0) {
    let body: string;
    if (clean) body = raw.slice(start, ends[count - 1]!);
    else {
      body = raw.slice(starts[0]!, ends[0]!);
      for (let k = 1; k < count; k++)
        body +=
          k === renamed
            ? "\\CurrentControlSet"
            : k === profile
              ? "\\Current"
              : `\\${raw.slice(starts[k]!, ends[k]!)}`;
    }
    display = display === "" ? body : `${display}\\${body}`;
  }
  return { kind: "registry", keys, display };
}

function segEnd(p: string, at: number): number {
  const e = p.indexOf("\\", at);
  return e < 0 ? p.length : e;
}

function isWow(k: string | undefined): boolean {
  return k === "WOW6432NODE" || k === "WOWAA32NODE";
}

function isControlSet(k: string): boolean {
  if (k.length !== 13 || !k.startsWith("CONTROLSET")) return false;
  for (let i = 10; i < 13; i++) {
    const c = k.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** True when applyAliases would change keys or their display. */
function needsAlias(keys: string[]): boolean {
  const k0 = keys[0];
  if (k0 === "HKU") {
    if (keys.length < 2) return false;
    const k1 = keys[1]!;
    if (k1 === ".DEFAULT") return true;
    if (k1.endsWith("_CLASSES")) return isWow(keys[2]);
    return keys[2] === "SOFTWARE" && (keys[3] === "CLASSES" || isWow(keys[3]));
  }
  if (k0 === "HKLM" && keys[1] === "SOFTWARE")
    return isWow(keys[2]) || (keys[2] === "CLASSES" && isWow(keys[3]));
  return false;
}

/** Removes `n` components at `at` from the keys and their display alike. */
function drop(keys: string[], shown: string[], at: number, n: number): void {
  keys.splice(at, n);
  shown.splice(at, n);
}

function applyAliases(keys: string[], shown: string[]): void {
  if (keys[0] === "HKU" && keys.length > 1) {
    if (keys[1] === ".DEFAULT") {
      keys[1] = "S-1-5-18";
      shown[1] = "S-1-5-18";
    }
    // In turn, so that they combine: Software\Wow6432Node\Classes is Software\Classes, which is
    // <SID>_Classes, whose Wow6432Node is itself.
    const classes = keys[1]!.endsWith("_CLASSES");
    if (!classes && keys[2] === "SOFTWARE" && isWow(keys[3])) drop(keys, shown, 3, 1);
    if (!classes && keys[2] === "SOFTWARE" && keys[3] === "CLASSES") {
      keys[1] += "_CLASSES";
      shown[1] += "_Classes";
      drop(keys, shown, 2, 2);
    }
    if (keys[1]!.endsWith("_CLASSES") && isWow(keys[2])) drop(keys, shown, 2, 1);
  } else if (keys[0] === "HKLM" && keys[1] === "SOFTWARE") {
    if (isWow(keys[2])) drop(keys, shown, 2, 1);
    if (keys[2] === "CLASSES" && isWow(keys[3])) drop(keys, shown, 3, 1);
  }
}
