/**
 * Policy server bench. `run({ quick })` returns:
 * - evals_per_s_10 / _1000 / _10000: engine decisions per second on one core (generated policies
 *   of that many rules, mixed request forms, canonicalisation included);
 * - grpc_checks_per_s_unary / _stream: Check calls over loopback h2c from one client process
 *   (@grpc/grpc-js), unary with 64 in flight, and a bidirectional CheckStream.
 */
import { PolicyEngine } from "../src/engine.js";
import { BENCH_VOLUMES, generatePolicy, generateRequests } from "./policy-gen.js";

function evalsPerSecond(rules: number, seconds: number): number {
  const engine = PolicyEngine.fromText(generatePolicy(rules), { volumes: BENCH_VOLUMES });
  const reqs = generateRequests(8192, rules);
  const mask = reqs.length - 1;
  let sink = 0;
  for (let k = 0; k < 20000; k++) sink += engine.decide(reqs[k & mask]!).cacheTtlMs; // warm up
  let n = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let k = 0; k < 4096; k++) sink += engine.decide(reqs[(n + k) & mask]!).cacheTtlMs;
    n += 4096;
    elapsed = process.hrtime.bigint() - start;
  }
  if (sink === -1) console.log(sink);
  return Math.round(n / (Number(elapsed) / 1e9));
}

export default async function run(opts: { quick: boolean }): Promise<Record<string, number>> {
  const seconds = opts.quick ? 0.4 : 2;
  const out: Record<string, number> = {};
  for (const n of [10, 1000, 10000]) out[`evals_per_s_${n}`] = evalsPerSecond(n, seconds);
  try {
    const { grpcBench } = await import("./policy-bench-grpc.js");
    Object.assign(out, await grpcBench(opts.quick));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ERR_MODULE_NOT_FOUND") throw err;
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run({ quick: process.argv.includes("--quick") }).then((r) => console.log(JSON.stringify(r)));
}
