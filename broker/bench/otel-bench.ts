// otel group: what OpenTelemetry costs end to end. The whole system as in production (driver
// simulator issuing operations from C, the broker and `agentsh-policy serve` as deployed
// (bench-procs.ts), each its own process) runs an unpaced uncached workload (every operation a new
// path, so every one goes through broker, gRPC and engine: the instrumented path) from 32
// closed-loop threads, enough to keep its CPU busy: the figure is what the machine can do. Modes:
//   none:   OTEL_SDK_DISABLED=true (the API is a no-op everywhere)
//   full:   every signal on with the shipped defaults: metrics on the Prometheus endpoints, scraped
//           from the start at the interval deploy/prometheus/prometheus.yml sets (15 s); traces
//           (1% of decisions, at most 10 new traces a second per process: at saturation the cap
//           decides) and logs exported with OTLP/HTTP to a receiver in this process
//   traced: full, with every decision traced (OTEL_TRACES_SAMPLER=parentbased_always_on)
//   untraced: full without traces (OTEL_TRACES_EXPORTER=none): what metrics and logs cost alone
// Two workloads:
//   agent:   the simulator's synthetic agent (files in its workspace, 10% registry), its session
//            registered with the broker as the agent runtime does it: workspace files are allowed,
//            registry writes denied; only those (about 3%) are audit records
//   audited: the worst case for logging: every operation a write outside any rule (no session
//            registered), so every decision is a deny with an audit record (also an OTLP log record)
// How it is compared: this machine's speed drifts by tens of percent within minutes, far more than
// the cost being measured. So each comparison runs two complete systems at the same time, the
// instrumented one and one with none, each with its own simulator, broker and server (servers
// started first, then both workloads together, so the measured windows coincide), and they share
// the machine by turns: driver/bench/cpu_swap.c pins every thread of one system to one CPU and the
// other's to the other, and swaps them every 250 ms on average. Each system then has one CPU's
// worth of the same machine, and the ratio of their throughputs is the ratio of what a decision
// costs end to end. The OTLP receiver (a fleet's collector runs on another machine) and the scraper
// live in this process, which stays on one of the two CPUs, so what they do is charged to both
// systems equally (left to the scheduler, the receiver could run where the exporting broker woke
// it, on that system's turn); the turns last a random 125 to 375 ms so that exports once a second
// do not keep step with them.
// Why the turns: the two virtual CPUs run at different speeds from moment to moment, and left to
// the scheduler the two systems' shares of them drifted apart for tens of seconds (two identical
// systems side by side differed by up to 12 % over 8 s windows, 3.4 % over 64 s; with the turns, by
// at most 4 % per window). Which system is started first still shifts a round by a few points, so
// rounds alternate which one that is, and each pair of rounds is averaged (geometric mean of the
// two ratios); a figure is the median over the round pairs.
// Steady state: the broker and the policy server are daemons, so the figures are measured after
// WARMUP_S seconds of the same load (as the e2e group measures latency and CPU). In the first
// seconds of a process V8 is still compiling, and code that runs for one decision in a hundred (a
// traced decision, an audit record) runs unoptimised for longer than the rest. The start-up cost is
// reported too, from rounds with a 2 s warm-up (otel_overhead_pct_first_seconds).
//   instrumentation_overhead_pct = (1 - median(rate full / rate none)) * 100 on the agent workload;
//   otel_overhead_pct_all_traced and otel_overhead_pct_untraced the same for traced and untraced;
//   otel_overhead_pct_all_audited for full on the audited workload; and the CPU each process spends
//   per decision (medians of the same ratios).
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getOrAdd } from "@agentsh/telemetry";
import type { BenchGroup } from "../../test/bench/main.js";
import { median } from "../../test/bench/stats.js";
import { canConnect, freePort, ROOT, running, SIM_LIB, sleep, waitFor } from "../../test/e2e/harness.js";
import { otlpReceiver } from "../../test/support/otlp-receiver.js";
import {
  brokerProcess,
  buildBundles,
  cpuSeconds,
  POLICY_BUNDLE,
  registerSimSession,
  simRun,
  stop,
} from "./bench-procs.js";

interface Round {
  ops: number;
  seconds: number;
  brokerCpuUsPerOp: number;
  serverCpuUsPerOp: number;
}

type Mode = "none" | "full" | "traced" | "untraced";
type Workload = "agent" | "audited";

/** Seconds of load before a measured window (steady state), and the start-up comparison's. */
const WARMUP_S = 20;
const FIRST_SECONDS_WARMUP_S = 2;
/** Closed-loop workload threads: enough to keep a core busy. */
const THREADS = 32;
/** driver/bench/cpu_swap.c: the two systems trade the two CPUs every SWAP_MS on average. */
const CPU_SWAP = join(ROOT, "driver/build/cpu-swap");
const SWAP_MS = 250;
/** How often Prometheus scrapes the services: the interval deploy/prometheus/prometheus.yml ships. */
const SCRAPE_INTERVAL_S = Number(
  /scrape_interval:\s*(\d+)s/.exec(
    readFileSync(join(ROOT, "deploy/prometheus/prometheus.yml"), "utf8"),
  )?.[1] ?? 15,
);

type Service = "server" | "broker";

/** One system (policy server, simulator, broker) in one mode, started in steps so that the systems
 * compared with each other start their workloads together. */
class System {
  private readonly dir = mkdtempSync(join(tmpdir(), "agentsh-bench-otel-"));
  private server: ChildProcess | undefined;
  private broker: ChildProcess | undefined;
  private sim: ReturnType<typeof simRun> | undefined;
  private scraper: NodeJS.Timeout | undefined;
  private serverPort = 0;
  private brokerMetrics = 0;
  private serverMetrics = 0;

  constructor(
    readonly mode: Mode,
    readonly workload: Workload,
    private readonly otlp: string,
  ) {}

  private otel(promPort: number): Record<string, string> {
    return this.mode === "none"
      ? { OTEL_SDK_DISABLED: "true" }
      : {
          OTEL_SDK_DISABLED: "false",
          OTEL_METRICS_EXPORTER: "prometheus",
          OTEL_EXPORTER_PROMETHEUS_PORT: String(promPort),
          OTEL_TRACES_EXPORTER: this.mode === "untraced" ? "none" : "otlp",
          OTEL_LOGS_EXPORTER: "otlp",
          ...(this.mode === "traced" ? { OTEL_TRACES_SAMPLER: "parentbased_always_on" } : {}),
          OTEL_EXPORTER_OTLP_ENDPOINT: this.otlp,
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        };
  }

  /** Starts the policy server and waits until it listens (its start-up time varies by seconds). */
  async startServer(): Promise<void> {
    [this.serverPort, this.brokerMetrics, this.serverMetrics] = [
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    // Its standard error is kept for the error of a round it does not survive (it logs little; the
    // broker's, which carries its audit records, stays discarded so that the measured work is the same).
    const stderr = openSync(join(this.dir, "server.err"), "w");
    try {
      this.server = spawn(
        process.execPath,
        [
          POLICY_BUNDLE,
          "serve",
          "--addr",
          `127.0.0.1:${this.serverPort}`,
          "--policy",
          join(ROOT, "policy-server/policies/default.yaml"),
          "--no-watch",
        ],
        {
          stdio: ["ignore", "ignore", stderr],
          env: { ...process.env, ...this.otel(this.serverMetrics) },
        },
      );
    } finally {
      closeSync(stderr); // the child has its own copy
    }
    await this.untilReady("server", () => canConnect(this.serverPort));
  }

  /** The system's `name` process (once started). */
  private proc(name: Service): ChildProcess {
    return (name === "server" ? this.server : this.broker)!;
  }

  /** Waits until `ready`; a clear error at once if the service exits first, or after the timeout. */
  private async untilReady(name: Service, ready: () => boolean | Promise<boolean>): Promise<void> {
    const p = this.proc(name);
    await waitFor(`the ${name}`, () => !running(p) || ready()).catch((e) => {
      throw this.ended(name, "did not start", e);
    });
    if (!running(p)) throw this.ended(name, "did not start", undefined);
  }

  /** CPU seconds of the system's `name` process; a clear error if it is no longer running. */
  private cpu(name: Service): number {
    const p = this.proc(name);
    let cause: unknown;
    if (running(p)) {
      try {
        return cpuSeconds(p.pid!);
      } catch (e) {
        cause = e; // ended between the check and the read
      }
    }
    throw this.ended(name, "ended during the round", cause);
  }

  /**
   * The error for a service that `what` (ended during the round, did not start): how it ended, and
   * for the policy server the end of its standard error (the broker's is discarded).
   */
  private ended(name: Service, what: string, cause: unknown): Error {
    const p = this.proc(name);
    const how = running(p) ? "still running" : (p.signalCode ?? `exit code ${p.exitCode}`);
    let tail = "";
    if (name === "server") {
      try {
        tail = readFileSync(join(this.dir, "server.err"), "utf8").slice(-2000).trim();
      } catch {
        // no file
      }
    }
    return new Error(
      `the ${this.mode} system's ${name} ${what} (${how})${tail ? `; its standard error ends: ${tail}` : ""}`,
      { cause },
    );
  }

  /**
   * Starts the simulator's workload and the broker; resolves with the measured window's figures.
   * `started` gets the system's pids once the broker has registered the session.
   */
  async run(seconds: number, warmupS: number, started: (pids: number[]) => void): Promise<Round> {
    const server = this.server!;
    const portSocket = join(this.dir, "port.sock");
    const sim = simRun(portSocket, [
      ...["--paths", "1000000", "--hot-share", "0", "--rate", "0", "--threads", String(THREADS)],
      ...(this.workload === "audited" ? ["--write-share", "1", "--registry-share", "0"] : []),
      ...["--warmup", String(warmupS), "--duration", String(seconds)],
    ]);
    this.sim = sim;
    await sleep(200);
    const api = join(this.dir, "broker.sock");
    const broker = brokerProcess({
      ...this.otel(this.brokerMetrics),
      AGENTSH_SIM_SOCKET: portSocket,
      AGENTSH_DRIVER_LIBRARY: SIM_LIB,
      AGENTSH_SERVER_ADDRESSES: `127.0.0.1:${this.serverPort}`,
      AGENTSH_API_SOCKET: api,
      AGENTSH_DRIVER_TIMEOUT_MS: "5000",
    });
    this.broker = broker;
    // The simulator's warm-up starts when the broker connects, about when its API socket appears.
    await this.untilReady("broker", () => existsSync(api));
    if (this.workload === "agent") await registerSimSession(api);
    started([server.pid!, sim.proc.pid!, broker.pid!]);
    if (this.mode !== "none") {
      // A Prometheus scraping both services at the shipped interval (collection is part of the cost),
      // from the start. The first scrapes' cost belongs to start-up: the Prometheus endpoint's
      // HTTP/1.1 sockets give V8's code for Node's streams, shared with the decision path's HTTP/2,
      // objects it has not seen, and the stream functions are deoptimised and compiled again, which
      // on this VM goes on for seconds. A first scrape one interval in (at 15 s, 5 s before the
      // steady-state window) cost that window about 1 % (sixteen rounds side by side), which a
      // long-running service never pays.
      const scrape = () => {
        for (const p of [this.brokerMetrics, this.serverMetrics])
          fetch(`http://127.0.0.1:${p}/metrics`)
            .then((r) => r.text())
            .catch(() => {});
      };
      scrape();
      this.scraper = setInterval(scrape, SCRAPE_INTERVAL_S * 1000);
    }
    const b0 = { t: 0, s: 0 };
    let ended: unknown;
    // From the end of the simulator's warm-up (its report covers the operations after it).
    const warm = setTimeout(() => {
      try {
        b0.t = this.cpu("broker");
        b0.s = this.cpu("server");
      } catch (e) {
        ended = e;
      }
    }, warmupS * 1000);
    const report = await sim.report
      .catch((e) => {
        // The simulator fails when the broker goes: name the service that ended, if one did.
        for (const name of ["server", "broker"] as const)
          if (!running(this.proc(name))) throw this.ended(name, "ended during the round", e);
        throw e;
      })
      .finally(() => clearTimeout(warm));
    if (ended) throw ended;
    const bt = this.cpu("broker") - b0.t;
    const st = this.cpu("server") - b0.s;
    return {
      ops: report.operations,
      seconds: report.operations / report.ops_per_second,
      brokerCpuUsPerOp: (bt * 1e6) / report.operations,
      serverCpuUsPerOp: (st * 1e6) / report.operations,
    };
  }

  async stop(): Promise<void> {
    if (this.scraper) clearInterval(this.scraper);
    if (this.broker) await stop(this.broker);
    if (this.sim) await stop(this.sim.proc);
    if (this.server) await stop(this.server);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The systems of `modes` at the same time: every policy server up first, then every workload
 * started together, so their measured windows coincide (a system measured while the other has
 * already finished would have the machine to itself). One Round per mode, in order.
 */
async function together(
  modes: Mode[],
  workload: Workload,
  seconds: number,
  warmupS: number,
  otlp: string,
): Promise<Round[]> {
  const systems = modes.map((m) => new System(m, workload, otlp));
  let swap: ChildProcess | undefined;
  try {
    await Promise.all(systems.map((s) => s.startServer()));
    // Both systems' processes share the two CPUs by turns from the start of the warm-up.
    const pids: number[][] = [];
    const started = (p: number[]) => {
      pids.push(p);
      if (pids.length === 2)
        // This process (the OTLP receiver, the scraper) stays on one CPU: charged to both equally.
        swap = spawn(CPU_SWAP, [String(SWAP_MS), ...pids.map((x) => x.join(",")), String(process.pid)], {
          stdio: ["ignore", "ignore", "inherit"],
        });
    };
    return await Promise.all(systems.map((s) => s.run(seconds, warmupS, started)));
  } finally {
    // It gives this process back both CPUs as it ends; the next round's processes inherit them.
    if (swap && running(swap)) {
      const ended = once(swap, "exit");
      swap.kill();
      await ended;
    }
    await Promise.all(systems.map((s) => s.stop()));
  }
}

/**
 * The comparisons: an instrumented mode and `none`, on one workload, run at the same time. `rounds`
 * (even: both start orders equally often) in a full run; the headline figure gets the most.
 */
interface Comparison {
  workload: Workload;
  mode: Exclude<Mode, "none">;
  rounds: number;
  /** Measured after FIRST_SECONDS_WARMUP_S instead of WARMUP_S. */
  firstSeconds?: true;
}
const COMPARISONS: readonly Comparison[] = [
  { workload: "agent", mode: "full", rounds: 12 },
  { workload: "agent", mode: "traced", rounds: 2 },
  { workload: "agent", mode: "untraced", rounds: 2 },
  { workload: "audited", mode: "full", rounds: 2 },
  { workload: "agent", mode: "full", rounds: 2, firstSeconds: true },
];
/** A comparison's name in the log and in the figures (`agent/full`, `agent/full-first-seconds`). */
const nameOf = (c: Comparison) => `${c.workload}/${c.mode}${c.firstSeconds ? "-first-seconds" : ""}`;

const run: BenchGroup = async ({ quick, log }) => {
  buildBundles();
  // The simulator, its library and the CPU swapper (not the driver's test binaries).
  const made = spawnSync(
    "make",
    [
      "-C",
      join(ROOT, "driver"),
      "--no-print-directory",
      "build/agentsh-sim",
      "build/libfltsim.so",
      "build/cpu-swap",
    ],
    { encoding: "utf8" },
  );
  if (made.status !== 0) throw new Error(`make -C driver failed: ${made.stderr}`);
  log(
    `two systems at a time, trading the two CPUs every ${SWAP_MS / 2}-${(SWAP_MS * 3) / 2} ms, this process (OTLP receiver, scraper) on one of them; Prometheus scrapes every ${SCRAPE_INTERVAL_S} s`,
  );
  const receiver = await otlpReceiver();
  const seconds = quick ? 3 : 10;
  /** Per comparison: its rounds' instrumented and uninstrumented figures. */
  const rounds = new Map<string, Array<{ none: Round; inst: Round }>>();
  const rate = (r: Round) => r.ops / r.seconds;
  const cpu = (r: Round) => r.brokerCpuUsPerOp + r.serverCpuUsPerOp;
  const show = (k: string, r: Round) =>
    `${k.padEnd(13)} ${rate(r).toFixed(0)}/s, CPU/decision broker ${r.brokerCpuUsPerOp.toFixed(1)} us, server ${r.serverCpuUsPerOp.toFixed(1)} us`;
  const most = Math.max(...COMPARISONS.map((c) => c.rounds));
  try {
    // Round i of every comparison that has one, then round i + 1: each comparison's rounds are
    // spread over the whole run rather than bunched in one phase of the machine.
    for (let i = 0; i < most; i++) {
      for (const c of COMPARISONS) {
        if (i >= (quick ? 2 : c.rounds)) continue;
        const order: Mode[] = i % 2 === 0 ? ["none", c.mode] : [c.mode, "none"];
        const full = c.firstSeconds ? FIRST_SECONDS_WARMUP_S : WARMUP_S;
        const warmupS = quick ? Math.min(full, 5) : full;
        const [a, b] = await together(order, c.workload, seconds, warmupS, receiver.url);
        const [none, inst] = i % 2 === 0 ? [a!, b!] : [b!, a!];
        getOrAdd(rounds, nameOf(c), () => []).push({ none, inst });
        log(`${show(`${c.workload}/none`, none)}  |  ${show(nameOf(c), inst)}  (${warmupS} s warm-up)`);
      }
    }
  } finally {
    receiver.close();
  }
  log(`OTLP received: ${(receiver.bytes() / 1e6).toFixed(1)} MB`);
  const pct = (xs: number[]) => xs.map((x) => `${((1 - x) * 100).toFixed(1)}`).join(" ");
  /** Rounds 2i and 2i+1 (the two start orders) averaged (geometric mean). */
  const pairMeans = (xs: number[]) =>
    Array.from({ length: xs.length >> 1 }, (_, i) => Math.sqrt(xs[2 * i]! * xs[2 * i + 1]!));
  const rateRatios = (name: string) => rounds.get(name)!.map((r) => rate(r.inst) / rate(r.none));
  const cpuRatios = (name: string) => rounds.get(name)!.map((r) => cpu(r.inst) / cpu(r.none));
  for (const name of rounds.keys()) {
    log(`throughput cost per round, ${name}: ${pct(rateRatios(name))} %`);
    log(`throughput cost per round pair, ${name}: ${pct(pairMeans(rateRatios(name)))} %`);
  }
  const cost = (name: string) => (1 - median(pairMeans(rateRatios(name)))) * 100;
  const cpuCost = (name: string) => (median(pairMeans(cpuRatios(name))) - 1) * 100;
  const out: Record<string, number> = {
    instrumentation_overhead_pct: cost("agent/full"),
    otel_overhead_pct_all_traced: cost("agent/traced"),
    otel_overhead_pct_all_audited: cost("audited/full"),
    otel_overhead_pct_untraced: cost("agent/untraced"),
    otel_overhead_pct_first_seconds: cost("agent/full-first-seconds"),
    otel_cpu_overhead_pct: cpuCost("agent/full"),
    otel_cpu_overhead_pct_all_traced: cpuCost("agent/traced"),
    otel_cpu_overhead_pct_all_audited: cpuCost("audited/full"),
    otel_cpu_overhead_pct_untraced: cpuCost("agent/untraced"),
  };
  // Steady-state rates and CPU per decision by mode (the start-up comparison's rounds left out).
  const byMode = new Map<string, Round[]>();
  for (const c of COMPARISONS) {
    if (c.firstSeconds) continue;
    for (const r of rounds.get(nameOf(c)) ?? []) {
      getOrAdd(byMode, `${c.workload}_none`, () => []).push(r.none);
      getOrAdd(byMode, `${c.workload}_${c.mode}`, () => []).push(r.inst);
    }
  }
  for (const [name, rs] of byMode) {
    out[`otel_uncached_per_s_${name}`] = median(rs.map(rate));
    out[`otel_broker_cpu_us_per_decision_${name}`] = median(rs.map((r) => r.brokerCpuUsPerOp));
    out[`otel_server_cpu_us_per_decision_${name}`] = median(rs.map((r) => r.serverCpuUsPerOp));
  }
  return out;
};
export default run;
