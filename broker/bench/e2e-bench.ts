// e2e group: the whole system on this machine, each part its own process as in production: the
// driver simulator (C core; its C workload generator issues the operations and measures each one),
// the broker (`agentsh-broker run`, through libfltsim with koffi) and a policy server
// (`agentsh-policy serve`) on loopback, with the default policy.
//   e2e_uncached_us_p50_1k / _p99_1k  uncached decisions at 1000 ops/s
//   e2e_max_uncached_per_s             most uncached decisions/s whose p99 stays under 10 ms
//   e2e_cached_us_p99                  decisions the driver answers from its cache
//   broker_cpu_pct_500 / rss_mb_500    broker process at 500 ops/s of a realistic mix
// Both services run as deployed: the `npm run build` bundles (built first), the broker with
// BROKER_NODE_FLAGS.
// Each phase starts a fresh simulator and broker and measures the steady state: the simulator runs
// --warmup seconds of the same load first (connection set-up, JIT, first streams) without recording.
// The workload's session is registered with the broker as the agent runtime would (bench-procs.ts),
// so its workspace files are allowed by the policy's workspace rule.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchGroup } from "../../test/bench/main.js";
import { canConnect, freePort, ROOT, SIM_LIB, sleep, waitFor } from "../../test/e2e/harness.js";
import {
  brokerProcess,
  buildBundles,
  cpuSeconds,
  POLICY_BUNDLE,
  registerSimSession,
  rssMb,
  type SimReport,
  simRun,
  stop,
} from "./bench-procs.js";

const WARMUP_S = "2";

function startBroker(dir: string, portSocket: string, server: string) {
  const api = join(dir, `broker-${Date.now()}.sock`);
  const proc = brokerProcess({
    AGENTSH_SIM_SOCKET: portSocket,
    AGENTSH_DRIVER_LIBRARY: SIM_LIB,
    AGENTSH_SERVER_ADDRESSES: server,
    AGENTSH_API_SOCKET: api,
    AGENTSH_DRIVER_TIMEOUT_MS: "5000",
  });
  return { proc, registered: registerSimSession(api) };
}

/** One workload run: a fresh simulator waits for a fresh broker, runs, reports. */
async function phase(
  dir: string,
  server: string,
  args: string[],
  sample?: (brokerPid: number) => () => Record<string, number>,
  warmupS = WARMUP_S,
): Promise<{ report: SimReport; sampled: Record<string, number> }> {
  const portSocket = join(dir, `port-${Date.now()}.sock`);
  const sim = simRun(portSocket, ["--warmup", warmupS, ...args]);
  await sleep(200);
  const { proc: broker, registered } = startBroker(dir, portSocket, server);
  const finish = sample?.(broker.pid!);
  try {
    await registered; // well inside the warm-up
    const report = await sim.report;
    return { report, sampled: finish?.() ?? {} };
  } finally {
    await stop(broker);
  }
}

const fromBroker = (r: SimReport) => r.outcomes.filter((o) => o.source === "broker");

const run: BenchGroup = async ({ quick, log }) => {
  buildBundles();
  const dir = mkdtempSync(join(tmpdir(), "agentsh-bench-e2e-"));
  const port = await freePort();
  const server = spawn(
    process.execPath,
    [
      POLICY_BUNDLE,
      "serve",
      "--addr",
      `127.0.0.1:${port}`,
      "--policy",
      join(ROOT, "policy-server/policies/default.yaml"),
      "--no-watch",
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  const address = `127.0.0.1:${port}`;
  const figures: Record<string, number> = {};
  try {
    await waitFor("the policy server", () => canConnect(port));
    const secs = quick ? "3" : "10";
    // Uncached: every operation names a path never seen before (a million distinct, none hot).
    const uncached = ["--paths", "1000000", "--hot-share", "0", "--threads", "2"];

    // The broker is a daemon: its latency is measured in steady state, after 20 s of the same load
    // (at 1000/s V8 is still compiling and deoptimising the decision path for the first seconds,
    // and those pauses were the p99 of a 2 s warm-up).
    const at1k = await phase(
      dir,
      address,
      [...uncached, "--rate", "1000", "--duration", secs],
      undefined,
      quick ? WARMUP_S : "20",
    );
    const b1k = fromBroker(at1k.report);
    const n1k = b1k.reduce((a, o) => a + o.count, 0);
    log(
      `1000/s uncached: ${n1k} broker decisions, p50 ${at1k.report.latency_us.p50} us, p99 ${at1k.report.latency_us.p99} us`,
    );
    figures.e2e_uncached_us_p50_1k = at1k.report.latency_us.p50;
    figures.e2e_uncached_us_p99_1k = at1k.report.latency_us.p99;

    // The workload's threads are closed loops (each waits for its answer), so 16 of them cannot
    // offer more than 16 / latency: at 1.6 ms that is 10000/s, and the generator, not the system,
    // set the ceiling. 32 threads (a build's worth of concurrent compilers) offer the rate; the
    // p99 < 10 ms criterion still bounds the queueing.
    let best = 0;
    let failed = 0;
    for (const rate of quick ? [2000, 5000, 10000] : [2000, 4000, 6000, 8000, 10000, 12000, 15000, 20000]) {
      const r = (
        await phase(dir, address, [
          ...uncached,
          "--rate",
          String(rate),
          "--duration",
          quick ? "2" : "4",
          "--threads",
          "32",
        ])
      ).report;
      const ok = r.latency_us.p99 < 10_000 && r.ops_per_second >= 0.9 * rate;
      log(
        `${rate}/s uncached: achieved ${r.ops_per_second.toFixed(0)}/s, p99 ${r.latency_us.p99} us ${ok ? "ok" : "over"}`,
      );
      // One step over its bound can be this VM's noise (a whole step at 2000/s has failed while
      // 14000/s passed in the next run): the steps go on until two in a row fail.
      if (!ok) {
        if (++failed === 2) break;
        continue;
      }
      failed = 0;
      best = Math.max(best, r.ops_per_second);
    }
    figures.e2e_max_uncached_per_s = best;

    const cached = (
      await phase(dir, address, ["--paths", "200", "--hot-share", "1", "--rate", "5000", "--duration", secs])
    ).report;
    const hits = cached.outcomes.filter((o) => o.source === "cache");
    figures.e2e_cached_us_p99 = Math.max(...hits.map((o) => o.p99_us));
    log(`cached: ${hits.reduce((a, o) => a + o.count, 0)} hits, p99 ${figures.e2e_cached_us_p99} us`);

    // Broker cost at 500 ops/s of a build-like mix: 1000 distinct paths, 90% on a hot set. The
    // broker is a daemon, so this is its steady state: at this rate only ~100 decisions/s reach
    // it, and V8 takes tens of seconds to compile their path (before that, most of the broker's CPU
    // is its JIT compiler and code still running in the interpreter). Measured after a warm-up of
    // 20 s of the same load.
    const mixWarmup = quick ? 10 : 20;
    const mix = await phase(
      dir,
      address,
      ["--paths", "1000", "--hot-share", "0.9", "--rate", "500", "--duration", quick ? "6" : "15"],
      (pid) => {
        let rss = 0;
        let startCpu = 0;
        let startAt = 0;
        const warm = setTimeout(
          () => {
            startCpu = cpuSeconds(pid);
            startAt = performance.now();
          },
          mixWarmup * 1000 + 500,
        );
        const t = setInterval(() => {
          try {
            rss = Math.max(rss, rssMb(pid));
          } catch {}
        }, 200);
        return () => {
          clearTimeout(warm);
          clearInterval(t);
          const seconds = (performance.now() - startAt) / 1000;
          return { cpu: ((cpuSeconds(pid) - startCpu) / seconds) * 100, rss };
        };
      },
      String(mixWarmup),
    );
    figures.broker_cpu_pct_500 = mix.sampled.cpu!;
    figures.broker_rss_mb_500 = mix.sampled.rss!;
    log(
      `500/s mix: broker CPU ${figures.broker_cpu_pct_500.toFixed(1)}% of a core, RSS ${figures.broker_rss_mb_500.toFixed(1)} MB`,
    );
  } finally {
    await stop(server);
    rmSync(dir, { recursive: true, force: true });
  }
  return figures;
};
export default run;
