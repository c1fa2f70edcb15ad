#!/usr/bin/env node
// Makes a fresh clone on a fresh machine ready: npm dependencies (npm ci) and the Debian packages
// the tests and the demo use (apt-get, when running as root). Used by `npm test`, `npm start` and
// .ci/run; safe to run again (it only installs what is missing). Dependency-free on purpose.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Debian packages and the command each provides (checked on PATH). */
export const SYSTEM_PACKAGES = [
  { pkg: "mingw-w64", command: "x86_64-w64-mingw32-gcc", why: "protocol.h and driver cross-compilation" },
  { pkg: "gcc", command: "gcc", why: "driver core, simulator, C tests" },
  { pkg: "make", command: "make", why: "driver build" },
  { pkg: "openssl", command: "openssl", why: "certificates for the TLS tests" },
  // Installed without its recommends (node exporter, ipmitool, ...): the tests run the binaries only.
  {
    pkg: "prometheus",
    command: "promtool",
    why: "observability test: a real Prometheus and promtool",
    noRecommends: true,
  },
];

function onPath(cmd) {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function log(msg) {
  process.stderr.write(`[setup] ${msg}\n`);
}

export function ensureSystemPackages() {
  const missing = SYSTEM_PACKAGES.filter((p) => !onPath(p.command));
  if (missing.length === 0) return true;
  const names = [...new Set(missing.map((p) => p.pkg))];
  const lean = new Set(missing.filter((p) => p.noRecommends).map((p) => p.pkg));
  if (process.getuid?.() !== 0) {
    log(`missing Debian packages: ${names.join(" ")}; run: sudo apt-get install -y ${names.join(" ")}`);
    return false;
  }
  log(`installing Debian packages: ${names.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () => {
    const groups = [names.filter((n) => !lean.has(n)), names.filter((n) => lean.has(n))];
    return groups.every((g, i) => {
      if (g.length === 0) return true;
      const args = ["install", "-y", "-qq", ...(i === 1 ? ["--no-install-recommends"] : []), ...g];
      return spawnSync("apt-get", args, { stdio: "inherit", env }).status === 0;
    });
  };
  let ok = install();
  if (!ok) {
    spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
    ok = install();
  }
  return ok && SYSTEM_PACKAGES.every((p) => onPath(p.command));
}

export function ensureNodeModules() {
  const marker = join(ROOT, "node_modules", ".bin", "tsx");
  if (existsSync(marker)) return true;
  log("node_modules missing: running npm ci");
  return npmInstall();
}

/**
 * npm ci, falling back to npm install (which keeps the lockfile's versions): the registry mirror
 * of these machines lacks some other platforms' optional packages (e.g. @biomejs/cli-darwin-arm64),
 * so the lockfile cannot list them and npm ci refuses it as "out of sync".
 */
export function npmInstall() {
  const args = ["--no-audit", "--no-fund"];
  if (spawnSync("npm", ["ci", ...args], { cwd: ROOT, stdio: "inherit" }).status === 0) return true;
  log("npm ci refused the lockfile; installing the locked versions with npm install");
  return spawnSync("npm", ["install", ...args], { cwd: ROOT, stdio: "inherit" }).status === 0;
}

export function ensureAll() {
  const npmOk = ensureNodeModules();
  const sysOk = ensureSystemPackages();
  return npmOk && sysOk;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const fresh = process.argv.includes("--npm-ci");
  const ok = (fresh ? npmInstall() : ensureNodeModules()) && ensureSystemPackages();
  process.exit(ok ? 0 : 1);
}
