#!/usr/bin/env node
// `npm test`: everything, on a fresh clone of a fresh machine. Sets up what is missing, then runs
// each stage and ends with one summary line "tests: N passed, M failed". Exit code 0 only if every
// stage passed. Stages: lint+format (biome), typecheck (tsc), proto (buf lint/format/breaking and
// generated code up to date), driver C tests under sanitizers, vitest (TypeScript unit, conformance,
// fuzz, integration and end-to-end tests); the driver's cross-compile with mingw-w64.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { ensureAll, ROOT } from "./setup/ensure.mjs";

const setupOk = ensureAll();
const bin = (name) => join(ROOT, "node_modules", ".bin", name);
const results = [];
let passed = 0;
let failed = 0;

function stage(name, cmd, args, opts = {}) {
  process.stdout.write(`\n=== ${name}: ${[cmd, ...args].join(" ")}\n`);
  const started = Date.now();
  const r = spawnSync(cmd, args, {
    cwd: ROOT,
    stdio: opts.capture ? ["ignore", "pipe", "inherit"] : "inherit",
    encoding: "utf8",
    env: {
      ...process.env,
      FORCE_COLOR: process.env.FORCE_COLOR ?? "0",
    },
  });
  if (opts.capture) process.stdout.write(r.stdout ?? "");
  const ok = r.status === 0;
  results.push({ name, ok, seconds: (Date.now() - started) / 1000 });
  return { ok, stdout: r.stdout ?? "" };
}

if (!setupOk) results.push({ name: "setup", ok: false, seconds: 0 });

const lint = stage("lint", bin("biome"), ["ci", "."]);
if (lint.ok) passed++;
else failed++;

const types = stage("typecheck", bin("tsc"), ["-p", "tsconfig.json", "--noEmit"]);
if (types.ok) passed++;
else failed++;

const proto = stage("proto", process.execPath, [join(ROOT, "test", "proto-check.mjs")]);
if (proto.ok) passed++;
else failed++;

if (existsSync(join(ROOT, "driver", "Makefile"))) {
  const c = stage("driver C tests", "make", ["-C", "driver", "--no-print-directory", "test"], {
    capture: true,
  });
  const m = /driver-c: (\d+) passed, (\d+) failed/.exec(c.stdout);
  if (m) {
    passed += Number(m[1]);
    failed += Number(m[2]);
  }
  if (!c.ok && (!m || Number(m[2]) === 0)) failed++;
  // The kernel glue and the core against the Windows headers (mingw-w64), as far as they allow.
  const cross = stage("driver cross-compile", "make", [
    "-C",
    "driver",
    "--no-print-directory",
    `-j${availableParallelism()}`,
    "cross",
  ]);
  if (cross.ok) passed++;
  else failed++;
}

const report = join(ROOT, ".vitest-results.json");
rmSync(report, { force: true });
const vt = stage("vitest", bin("vitest"), [
  "run",
  "--reporter=default",
  "--reporter=json",
  `--outputFile.json=${report}`,
]);
if (existsSync(report)) {
  const j = JSON.parse(readFileSync(report, "utf8"));
  passed += j.numPassedTests;
  failed += j.numFailedTests;
  if (!vt.ok && j.numFailedTests === 0) failed++; // a suite that failed to load, or an unhandled error
} else {
  failed++;
}

process.stdout.write("\n=== summary\n");
for (const r of results)
  process.stdout.write(`${r.ok ? "ok  " : "FAIL"} ${r.name} (${r.seconds.toFixed(1)} s)\n`);
const allOk = results.every((r) => r.ok);
if (!allOk && failed === 0) failed = 1;
process.stdout.write(`tests: ${passed} passed, ${failed} failed\n`);
process.exit(allOk ? 0 : 1);
