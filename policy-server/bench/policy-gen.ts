/**
 * Generates realistic policies and request mixes for the bench and the scale tests: literal
 * project trees, per-user AppData globs, extension globs, registry vendor keys, HKCU (templated)
 * and ${WORKSPACE} rules, with requests in every path form the kernel and people use.
 */
import type { CheckInput } from "../src/engine-types.js";
import { VolumeMap } from "../src/path-volumes.js";

/** Small deterministic PRNG (mulberry32) so runs are comparable. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const DECISIONS = ["allow", "deny", "audit", "approve"] as const;
const OPS = ["read", "write", "create", "delete", "rename"] as const;

export function generatePolicy(n: number, seed = 1): string {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const ops = (): string => {
    if (r() < 0.4) return "['*']";
    const s = new Set<string>();
    const k = 1 + Math.floor(r() * 3);
    for (let i = 0; i < k; i++) s.add(pick(OPS));
    return `[${[...s].join(", ")}]`;
  };
  const file: string[] = [];
  const reg: string[] = [];
  for (let i = 0; i < n; i++) {
    const x = r();
    let p: string;
    let kind: "f" | "r" = "f";
    if (x < 0.35) p = `C:\\Projects\\team${i % 97}\\repo${i}\\**`;
    else if (x < 0.5) p = `C:\\Users\\*\\AppData\\Local\\Vendor${i}\\**`;
    else if (x < 0.55) p = `**\\*.ext${i}`;
    else if (x < 0.62) p = `D:\\data\\set${i}\\*.csv`;
    else if (x < 0.67) p = `\${WORKSPACE}\\gen${i}\\**`;
    else if (x < 0.72) p = `C:\\Windows\\System32\\drivers\\drv${i}.sys`;
    else if (x < 0.75) p = `\\\\fileserver${i % 13}\\share${i}\\**`;
    else {
      kind = "r";
      const y = r();
      if (y < 0.6) p = `HKLM\\SOFTWARE\\Vendor${i}\\**`;
      else if (y < 0.85) p = `HKCU\\Software\\Vendor${i}\\App\\*`;
      else p = `HKLM\\SYSTEM\\CurrentControlSet\\Services\\svc${i}\\Parameters`;
    }
    const rule = `  - name: r${i}\n    paths: ['${p}']\n    operations: ${ops()}\n    decision: ${pick(DECISIONS)}\n`;
    if (kind === "f") file.push(rule);
    else reg.push(`${rule}    priority: ${Math.floor(r() * 5)}\n`);
  }
  return `version: 1\nname: bench-${n}\ndefault_action: deny\ndefault_read_action: allow\nfile_rules:\n${file.join("")}registry_rules:\n${reg.join("")}`;
}

export const BENCH_SID = "S-1-5-21-1004336348-1177238915-682003330-1001";
export const BENCH_VOLUMES = new VolumeMap([
  ["\\Device\\HarddiskVolume3", "C:"],
  ["\\Device\\HarddiskVolume4", "D:"],
]);

/** A mix of requests: workspace work, rule hits, misses, registry, NT forms. */
export function generateRequests(count: number, ruleCount: number, seed = 7): CheckInput[] {
  const r = rng(seed);
  const i = (): number => Math.floor(r() * ruleCount);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const sessions = Array.from({ length: 8 }, (_, k) => ({
    workspace: `C:\\work\\agent${k}\\repo`,
    userSid: `${BENCH_SID.slice(0, -4)}${1001 + k}`,
    userProfile: `C:\\Users\\dev${k}`,
  }));
  const out: CheckInput[] = [];
  for (let k = 0; k < count; k++) {
    const s = pick(sessions);
    const x = r();
    const op = pick(OPS.slice(0, 4));
    let kind: "file" | "registry" = "file";
    let path: string;
    if (x < 0.3) path = `${s.workspace}\\src\\module${k % 50}\\file${k % 7}.ts`;
    else if (x < 0.4)
      path = `\\Device\\HarddiskVolume3\\work\\agent${k % 8}\\repo\\node_modules\\pkg${k % 30}\\index.js`;
    else if (x < 0.5) path = `C:\\Projects\\team${i() % 97}\\repo${i()}\\src\\main.c`;
    else if (x < 0.58) path = `C:\\Users\\dev${k % 8}\\AppData\\Local\\Vendor${i()}\\cache\\blob${k % 9}`;
    else if (x < 0.63) path = `\\??\\D:\\data\\set${i()}\\part${k % 4}.csv`;
    else if (x < 0.68) path = `C:\\Windows\\System32\\drivers\\drv${i()}.sys`;
    else if (x < 0.73) path = `C:\\Program Files\\Tool\\bin\\tool${k % 20}.exe`;
    else if (x < 0.77) path = `C:\\Users\\dev${k % 8}\\Documents\\notes${k % 40}.ext${i()}`;
    else {
      kind = "registry";
      const y = r();
      if (y < 0.4) path = `\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor${i()}\\Settings\\k${k % 5}`;
      else if (y < 0.7) path = `\\REGISTRY\\USER\\${s.userSid}\\Software\\Vendor${i()}\\App\\v`;
      else if (y < 0.85) path = "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run";
      else path = `\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\svc${i()}\\Parameters`;
    }
    out.push({ kind, operation: op, path, session: s, volumes: BENCH_VOLUMES });
  }
  return out;
}
