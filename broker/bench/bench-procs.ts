// Process plumbing of the end-to-end benchmarks (e2e, otel): the simulator's C workload generator,
// the broker as deployed, and /proc readings. Each part runs as its own process, as in production.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, SIM_BIN, sleep, terminate } from "../../test/e2e/harness.js";
import { sessionClient } from "../src/session/session-api.js";

const CLK_TCK = 100; // Linux USER_HZ

/** User + system CPU time of a process so far, in seconds. */
export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK; // utime + stime (fields 14, 15)
}

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}

/** SIGTERM, then SIGKILL after 3 s. */
export const stop = (p: ChildProcess): Promise<void> => terminate(p, 3000);

export interface SimReport {
  ops_per_second: number;
  operations: number;
  latency_us: { p50: number; p90: number; p99: number; max: number };
  outcomes: Array<{ result: string; source: string; count: number; p50_us: number; p99_us: number }>;
  metrics: Record<string, number>;
}

/**
 * `agentsh-sim run --synthetic`: waits up to 30 s for a broker on `portSocket`, runs the workload
 * `args` describe, and reports (the promise settles when the simulator exits).
 */
export function simRun(
  portSocket: string,
  args: string[],
): { proc: ChildProcess; report: Promise<SimReport> } {
  const proc = spawn(
    SIM_BIN,
    ["run", "--port-socket", portSocket, "--synthetic", "--json", "--wait-client", "30", ...args],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  proc.stdout!.on("data", (d) => {
    out += d;
  });
  proc.stderr!.on("data", (d) => {
    err += d;
  });
  const report = new Promise<SimReport>((resolve, reject) => {
    // "close", not "exit": the report may still be in the stdout pipe when the process has exited.
    proc.once("close", (code) => {
      if (code !== 0) reject(new Error(`agentsh-sim ${args.join(" ")} exited ${code}: ${err.slice(-500)}`));
      else resolve(JSON.parse(out.trim().split("\n").at(-1)!) as SimReport);
    });
  });
  return { proc, report };
}

/** The services as they are deployed: the bundles of `npm run build` (the broker with the memory flags it ships with). */
export const BROKER_BUNDLE = join(ROOT, "broker/dist/agentsh-broker.mjs");
export const POLICY_BUNDLE = join(ROOT, "policy-server/dist/agentsh-policy.mjs");
/**
 * The broker's V8 flags. A young generation of 4 MB semi-spaces (it was 1 MB): at saturation the
 * 1 MB one scavenged about 50 times a second and promoted short-lived request objects into the old
 * generation, so the broker used 16-22 % more CPU per decision (two systems side by side, 4 rounds)
 * and held more memory (about 100 MB resident against 86 MB with 4 MB, one run each). At 500 ops/s
 * the steady state is the same (78-80 MB); the most over the phase, warm-up included, is about 5 MB
 * more (85 against 80-82 MB). One V8 worker thread. No memory reducer: at 500 ops/s V8 sees the
 * broker as idle and its memory reducer keeps running full garbage collections to shrink a heap
 * that the next decisions grow again; without it the broker used 4.21-4.64 % of a core there
 * against 4.78-5.29 % (five runs each, alternating, every pair lower), holding about 2 MB more
 * (80 against 78 MB).
 */
export const BROKER_NODE_FLAGS = ["--max-semi-space-size=4", "--v8-pool-size=1", "--no-memory-reducer"];

export function buildBundles(): void {
  const built = spawnSync(process.execPath, [join(ROOT, "build.mjs")], { encoding: "utf8" });
  if (built.status !== 0) throw new Error(`npm run build failed: ${built.stderr}`);
}

/** `agentsh-broker run` from the bundle, configured by `env` (AGENTSH_*, OTEL_*). */
export function brokerProcess(env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [...BROKER_NODE_FLAGS, BROKER_BUNDLE, "run"], {
    stdio: ["ignore", "ignore", "ignore"],
    env: { ...process.env, ...env },
  });
}

/**
 * The session the simulator's synthetic workload runs in (sim_main.c: token 1, root pid 4000,
 * workspace C:\work\s0, the simulator's default user SID), registered with the broker over its
 * local API as the agent runtime does it (a SessionService client on the broker's socket), so the
 * policy server sees the workspace: the agent's own files are then allowed by the workspace rule, as
 * in real use (without it every write would be an unmatched write, denied and audited). Waits for
 * the broker's socket to accept (up to 5 s); the call itself takes milliseconds, so the session is there
 * before the workload's warm-up ends. The driver already has the session from the simulator;
 * registering it again with the same root is idempotent.
 */
export async function registerSimSession(apiSocket: string): Promise<void> {
  const until = Date.now() + 5000;
  for (;;) {
    try {
      await sessionClient(apiSocket).registerSession({
        token: 1n,
        rootPid: 4000,
        workspace: "C:\\work\\s0",
        userSid: "S-1-5-21-1000000000-1000000000-1000000000-1001",
        userProfile: "",
        agent: "bench",
      });
      return;
    } catch (e) {
      // No socket yet, or not accepting yet: the broker is still starting.
      if (Date.now() > until) throw e;
    }
    await sleep(25);
  }
}
