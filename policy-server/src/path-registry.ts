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
import type { CanonicalResult } from "./path-types.js";
import { upcase } from "./path-upcase.js";

export interface RegistryContext {
  /** The session user's SID, for HKCU. */
  userSid?: string | undefined;
}

const SID = /^S-1-\d+(-\d+)+$/i;
const MAX_KEY_NAME = 255;

function fail(error: string): CanonicalResult {
  return { error };
}

export function isSid(s: string): boolean {
  return SID.test(s);
}

export function canonicalizeRegistry(
  raw: string,
  ctx: RegistryContext = {},
  pattern = false,
): CanonicalResult {
  if (raw.length === 0) return fail("empty registry path");
  if (raw.length > 32767) return fail("registry path too long");
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c < 0x20) return fail(`control character U+${c.toString(16).padStart(4, "0")} in registry path`);
  }
  let p = raw;
  const ps = /^(Microsoft\.PowerShell\.Core\\)?Registry::/i.exec(p);
  if (ps) p = p.slice(ps[0].length);
  if (/^Computer\\HKEY_/i.test(p)) p = p.slice(9);
  const parts = p.split("\\");
  // Upper-case once (the mapping is one code unit to one), then slice per component.
  const upper = upcase(p);
  let keys: string[];
  let shown: string[];
  let i: number;
  if (parts[0] === "") {
    if (upcase(parts[1] ?? "") !== "REGISTRY" || !parts[2]) {
      return fail(`"${raw}" is not a registry path (\\REGISTRY\\MACHINE\\... or HKLM\\...)`);
    }
    const r = upcase(parts[2]);
    if (r === "MACHINE") [keys, shown] = [["HKLM"], ["HKLM"]];
    else if (r === "USER") [keys, shown] = [["HKU"], ["HKU"]];
    else [keys, shown] = [[`\\REGISTRY\\${r}`], [`\\REGISTRY\\${parts[2]}`]];
    i = 3;
  } else {
    const head = upcase(parts[0]!).replace(/:$/, "");
    i = 1;
    const userSid = (): string | undefined =>
      ctx.userSid && SID.test(ctx.userSid) ? ctx.userSid : undefined;
    switch (head) {
      case "HKLM":
      case "HKEY_LOCAL_MACHINE":
        [keys, shown] = [["HKLM"], ["HKLM"]];
        break;
      case "HKU":
      case "HKEY_USERS":
        [keys, shown] = [["HKU"], ["HKU"]];
        break;
      case "HKCU":
      case "HKEY_CURRENT_USER":
      case "HKEY_CURRENT_USER_LOCAL_SETTINGS": {
        const sid = userSid();
        if (!sid) {
          return fail(
            ctx.userSid
              ? `invalid user SID "${ctx.userSid}" for ${head}`
              : `${head} needs the session's user SID (none given)`,
          );
        }
        if (head === "HKEY_CURRENT_USER_LOCAL_SETTINGS") {
          [keys, shown] = [
            ["HKU", `${upcase(sid)}_CLASSES`, "LOCAL SETTINGS"],
            ["HKU", `${sid}_Classes`, "Local Settings"],
          ];
        } else
          [keys, shown] = [
            ["HKU", upcase(sid)],
            ["HKU", sid],
          ];
        break;
      }
      case "HKCR":
      case "HKEY_CLASSES_ROOT":
        [keys, shown] = [
          ["HKLM", "SOFTWARE", "CLASSES"],
          ["HKLM", "SOFTWARE", "Classes"],
        ];
        break;
      case "HKCC":
      case "HKEY_CURRENT_CONFIG":
        [keys, shown] = [
          ["HKLM", "SYSTEM", "CURRENTCONTROLSET", "HARDWARE PROFILES", "CURRENT"],
          ["HKLM", "SYSTEM", "CurrentControlSet", "Hardware Profiles", "Current"],
        ];
        break;
      default:
        if (pattern && (head === "**" || /[*?]/.test(head))) {
          [keys, shown] = [[], []];
          i = 0;
          break;
        }
        return fail(
          `unknown registry root "${parts[0]}" (use HKLM, HKCU, HKU, HKCR, HKCC or \\REGISTRY\\...)`,
        );
    }
  }
  let off = 0;
  for (let k = 0; k < i; k++) off += parts[k]!.length + 1;
  for (; i < parts.length; i++) {
    const comp = parts[i]!;
    const at = off;
    off += comp.length + 1;
    if (comp === "") continue;
    if (comp === "." || comp === "..") return fail(`"${comp}" in a registry path is ambiguous`);
    if (comp.length > MAX_KEY_NAME) return fail(`registry key name longer than ${MAX_KEY_NAME} characters`);
    if (pattern && comp === "**") {
      if (keys[keys.length - 1] !== "**") {
        keys.push("**");
        shown.push("**");
      }
      continue;
    }
    keys.push(upper.slice(at, at + comp.length));
    shown.push(comp);
  }
  applyAliases(keys, shown);
  return { kind: "registry", keys, display: shown.join("\\") };
}

function isWow(k: string | undefined): boolean {
  return k === "WOW6432NODE" || k === "WOWAA32NODE";
}

function applyAliases(keys: string[], shown: string[]): void {
  if (keys[0] === "HKU" && keys.length > 1) {
    if (keys[1] === ".DEFAULT") {
      keys[1] = "S-1-5-18";
      shown[1] = "S-1-5-18";
    }
    if (keys[2] === "SOFTWARE" && keys[3] === "CLASSES" && !keys[1]!.endsWith("_CLASSES")) {
      keys[1] += "_CLASSES";
      shown[1] += "_Classes";
      keys.splice(2, 2);
      shown.splice(2, 2);
    }
    if (keys[1]!.endsWith("_CLASSES")) {
      if (isWow(keys[2])) {
        keys.splice(2, 1);
        shown.splice(2, 1);
      }
    } else if (keys[2] === "SOFTWARE" && isWow(keys[3])) {
      keys.splice(3, 1);
      shown.splice(3, 1);
    }
  } else if (keys[0] === "HKLM") {
    if (keys[1] === "SOFTWARE") {
      if (isWow(keys[2])) {
        keys.splice(2, 1);
        shown.splice(2, 1);
      } else if (keys[2] === "CLASSES" && isWow(keys[3])) {
        keys.splice(3, 1);
        shown.splice(3, 1);
      }
    } else if (keys[1] === "SYSTEM" && keys[2] !== undefined) {
      if (keys[2] === "CURRENTCONTROLSET" || /^CONTROLSET\d{3}$/.test(keys[2])) {
        keys[2] = "CURRENTCONTROLSET";
        shown[2] = "CurrentControlSet";
      }
    }
  }
}
