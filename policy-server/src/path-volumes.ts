import { upcase } from "./path-upcase.js";

const HDV = "HARDDISKVOLUME";

/**
 * N when up[at, e) (upper case) is HARDDISKVOLUME<N> with 1 to 6 digits and no leading zero, else 0.
 * Object names are exact: HarddiskVolume03 is another name than HarddiskVolume3.
 */
export function volumeNumber(up: string, at: number, e: number): number {
  const len = e - at;
  if (len < 15 || len > 20 || !up.startsWith(HDV, at)) return 0;
  let v = 0;
  for (let i = at + 14; i < e; i++) {
    const d = up.charCodeAt(i) - 48;
    if (d < 0 || d > 9 || (d === 0 && v === 0)) return 0;
    v = v * 10 + d;
  }
  return v;
}

/**
 * Maps NT device names to the DOS roots people write rules with. The broker knows the host's
 * volumes (`\Device\HarddiskVolume3` is `C:`); a volume mounted in a folder maps to that folder
 * (`\Device\HarddiskVolume5` -> `C:\mnt\data`). Keys accept `\Device\...`, `\\?\Volume{GUID}` and
 * `Volume{GUID}` forms and are compared case-insensitively.
 */
export class VolumeMap {
  private readonly map = new Map<string, string>();
  /** `\Device\<NAME>` entries by NAME (upper case), for the canonicaliser. */
  private readonly devices = new Map<string, string>();
  /** Roots of `\Device\HarddiskVolume<N>` by N (no leading zero): most requests name one. */
  private readonly byVolumeNumber: (string | undefined)[] = [];
  /** Identity of the content, for caches keyed by session context. */
  readonly key: string;

  constructor(entries: Iterable<readonly [device: string, root: string]> = []) {
    const parts: string[] = [];
    const deviceOf = new Map<string, string>();
    for (const [device, root] of entries) {
      const k = VolumeMap.deviceKey(device);
      const r = root.replace(/\//g, "\\").replace(/\\+$/, "");
      if (!/^[A-Za-z]:(\\.*)?$/.test(r)) {
        throw new Error(
          `volume map: root for ${device} must be a drive or folder like C: or C:\\mnt, got ${root}`,
        );
      }
      // One volume, one root; one root, one volume: either way round, paths would be decided under a
      // name that depends on which entry came last.
      const R = upcase(r);
      const had = this.map.get(k);
      if (had !== undefined && upcase(had) !== R)
        throw new Error(`volume map: ${device} is mapped to both ${had} and ${r}`);
      const other = deviceOf.get(R);
      if (other !== undefined && other !== k)
        throw new Error(`volume map: ${r} is the root of both ${other} and ${VolumeMap.deviceKey(device)}`);
      deviceOf.set(R, k);
      if (had !== undefined) continue;
      this.map.set(k, r);
      if (k.startsWith("\\DEVICE\\")) {
        this.devices.set(k.slice(8), r);
        const n = volumeNumber(k, 8, k.length);
        if (n > 0) this.byVolumeNumber[n] = r;
      }
      parts.push(`${k}=${upcase(r)}`);
    }
    this.key = parts.sort().join("|");
  }

  static readonly empty = new VolumeMap();

  /** Parses "C:=\\Device\\HarddiskVolume3" (either order). */
  static parseEntry(text: string): [string, string] {
    const eq = text.indexOf("=");
    if (eq < 0) throw new Error(`volume map entry must be DRIVE=DEVICE, got ${text}`);
    const a = text.slice(0, eq).trim();
    const b = text.slice(eq + 1).trim();
    return /^[A-Za-z]:/.test(a) ? [b, a] : [a, b];
  }

  /** Normalised key of a device name: upper case, no trailing separator, `\Device\X` or `VOLUME{...}`. */
  static deviceKey(device: string): string {
    let d = upcase(device.replace(/\//g, "\\")).replace(/\\+$/, "");
    d = d.replace(/^(\\\\\?\\|\\\\\.\\|\\\?\?\\|\\GLOBAL\?\?\\)/, "");
    if (!d.startsWith("\\")) {
      if (d.startsWith("VOLUME{")) return d;
      d = `\\${d}`;
    }
    return d;
  }

  /** The DOS root for a device key (from deviceKey), or undefined. */
  lookup(deviceKey: string): string | undefined {
    return this.map.get(deviceKey);
  }

  /** The DOS root for `\Device\<upperName>`, or undefined. */
  lookupDevice(upperName: string): string | undefined {
    return this.devices.get(upperName);
  }

  /** The root of `\Device\HarddiskVolume<n>` (as lookupDevice("HARDDISKVOLUME<n>")). */
  lookupVolumeNumber(n: number): string | undefined {
    return this.byVolumeNumber[n];
  }

  get size(): number {
    return this.map.size;
  }
}
