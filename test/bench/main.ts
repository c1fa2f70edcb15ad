// `npm run bench [-- --only GROUP[,GROUP]] [-- --json] [-- --quick]`: the one way to run benchmarks.
// Each group is a module whose default export returns named figures. Without --json a readable
// table is printed; with --json the last line of stdout is one JSON object {figure: value}.
// Benchmarks are not tests: they print measurements and never assert on timing.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

export type BenchGroup = (opts: {
  quick: boolean;
  log: (line: string) => void;
}) => Promise<Record<string, number>>;

const ROOT = resolve(import.meta.dirname, "../..");
/** Group name -> module (relative to the repo root) exporting a BenchGroup as default. */
const GROUPS: Record<string, string> = {
  codec: "broker/bench/codec-bench.ts",
  driver: "driver/bench/driver-bench.ts",
  policy: "policy-server/bench/policy-bench.ts",
  e2e: "broker/bench/e2e-bench.ts",
  otel: "broker/bench/otel-bench.ts",
};

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      only: { type: "string" },
      json: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      `usage: npm run bench -- [--only ${Object.keys(GROUPS).join("|")}[,...]] [--json] [--quick]\n`,
    );
    return 0;
  }
  const available = Object.keys(GROUPS).filter((g) => existsSync(resolve(ROOT, GROUPS[g]!)));
  const wanted = values.only ? values.only.split(",").map((s) => s.trim()) : available;
  for (const g of wanted) {
    if (!(g in GROUPS)) {
      process.stderr.write(`bench: unknown group "${g}" (groups: ${Object.keys(GROUPS).join(", ")})\n`);
      return 2;
    }
    if (!available.includes(g)) {
      process.stderr.write(`bench: group "${g}" is not built yet (${GROUPS[g]} does not exist)\n`);
      return 2;
    }
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const figures: Record<string, number> = {};
  for (const g of wanted) {
    log(`bench: running ${g}`);
    const mod = (await import(pathToFileURL(resolve(ROOT, GROUPS[g]!)).href)) as { default: BenchGroup };
    const out = await mod.default({ quick: values.quick, log });
    for (const [k, v] of Object.entries(out)) figures[k] = v;
    if (!values.json) {
      process.stdout.write(`\n${g}\n`);
      const w = Math.max(...Object.keys(out).map((k) => k.length));
      for (const [k, v] of Object.entries(out))
        process.stdout.write(`  ${k.padEnd(w)}  ${formatNumber(v)}\n`);
    }
  }
  if (values.json) process.stdout.write(`${JSON.stringify(figures)}\n`);
  return 0;
}

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en-US") : v.toFixed(v % 1 === 0 ? 0 : 2);
}

process.exitCode = await main();
