// \Device\HarddiskVolumeN -> drive letter, from QueryDosDeviceW (kernel32 on Windows, the
// simulator's table elsewhere), so the policy server sees C:\... for what the kernel names by device.
import type { FltLib } from "./port/port-fltlib.js";

export class VolumeMap {
  /** Lower-cased device name -> drive ("C:"), longest device first for prefix matching. */
  private entries: Array<{ device: string; lower: string; drive: string }> = [];
  private pairs: ReadonlyArray<{ device: string; drive: string }> = [];

  static fromLib(lib: FltLib): VolumeMap {
    const m = new VolumeMap();
    m.refresh(lib);
    return m;
  }

  static fromPairs(pairs: Array<[drive: string, device: string]>): VolumeMap {
    const m = new VolumeMap();
    m.set(pairs);
    return m;
  }

  refresh(lib: FltLib): void {
    const pairs: Array<[string, string]> = [];
    for (let c = 65; c <= 90; c++) {
      const drive = `${String.fromCharCode(c)}:`;
      const target = lib.queryDosDevice(drive)[0];
      if (target) pairs.push([drive, target]);
    }
    this.set(pairs);
  }

  set(pairs: Array<[drive: string, device: string]>): void {
    this.entries = pairs
      .map(([drive, device]) => ({ device, lower: device.toLowerCase(), drive: drive.toUpperCase() }))
      .sort((a, b) => b.device.length - a.device.length);
    this.pairs = this.entries.map(({ device, drive }) => ({ device, drive }));
  }

  list(): ReadonlyArray<{ device: string; drive: string }> {
    return this.pairs;
  }

  /** "\Device\HarddiskVolume3\src\a.c" -> "C:\src\a.c"; unknown devices are returned unchanged. */
  toDos(ntPath: string): string {
    const lower = ntPath.toLowerCase();
    for (const e of this.entries) {
      if (
        lower.startsWith(e.lower) &&
        (ntPath.length === e.device.length || ntPath[e.device.length] === "\\")
      ) {
        return e.drive + (ntPath.length === e.device.length ? "\\" : ntPath.slice(e.device.length));
      }
    }
    return ntPath;
  }

  /** "C:\src" -> "\Device\HarddiskVolume3\src" (cache invalidation prefixes are in the driver's form). */
  toNt(dosPath: string): string {
    const m = /^([A-Za-z]:)(\\.*)?$/.exec(dosPath);
    if (!m) return dosPath;
    const e = this.entries.find((x) => x.drive === m[1]!.toUpperCase());
    return e ? e.device + (m[2] ?? "") : dosPath;
  }
}
