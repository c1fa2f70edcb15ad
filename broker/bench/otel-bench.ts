// otel group: what OpenTelemetry costs end to end. The whole system as in production (driver
// simulator issuing operations from C, the broker as deployed (bench-procs.ts), `agentsh-policy
// serve`, each its own process) runs the same unpaced uncached workload (every operation a new path, so every one goes
// through broker, gRPC and engine: the instrumented path, the worst case) in interleaved rounds:
//   none:   OTEL_SDK_DISABLED=true (the API is a no-op everywhere)
//   full:   every signal on with the shipped defaults: metrics on the Prometheus endpoints, scraped
//           every second; traces (1% of decisions) and logs exported with OTLP/HTTP to a receiver
//           in this process
//   traced: full, with every decision traced (OTEL_TRACES_SAMPLER=parentbased_always_on)
// instrumentation_overhead_pct = (throughput none - throughput full) / throughput none * 100 from
// the summed operations of the rounds; otel_overhead_pct_all_traced the same for traced; and the CPU
// each process spends per decision (less sensitive to other load on the machine than throughput).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchGroup } from "../../test/bench/main.js";
import { freePort, ROOT, SIM_LIB, sleep } from "../../test/e2e/harness.js";
import { brokerProcess, buildBroker, cpuSeconds, simRun, stop } from "./bench-procs.js";

/** A stand-in OpenTelemetry collector: accepts OTLP/HTTP exports, counts them. */
async function otlpReceiver(): Promise<{ url: string; bytes: () => number; close: () => void }> {
  let bytes = 0;
  const server = http.createServer((req, res) => {
    req.on("data", (d: Buffer) => {
      bytes += d.length;
    });
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/x-protobuf" });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bytes: () => bytes,
    close: () => server.close(),
  };
}

interface Round {
  ops: number;
  seconds: number;
  brokerCpuUsPerOp: number;
  serverCpuUsPerOp: number;
}

type Mode = "none" | "full" | "traced";

async function round(mode: Mode, seconds: number, otlp: string): Promise<Round> {
  const dir = mkdtempSync(join(tmpdir(), "agentsh-bench-otel-"));
  const [serverPort, brokerMetrics, serverMetrics] = [await freePort(), await freePort(), await freePort()];
  const otel = (promPort: number): Record<string, string> =>
    mode === "none"
      ? { OTEL_SDK_DISABLED: "true" }
      : {
          OTEL_SDK_DISABLED: "false",
          OTEL_METRICS_EXPORTER: "prometheus",
          OTEL_EXPORTER_PROMETHEUS_PORT: String(promPort),
          OTEL_TRACES_EXPORTER: "otlp",
          OTEL_LOGS_EXPORTER: "otlp",
          ...(mode === "traced" ? { OTEL_TRACES_SAMPLER: "parentbased_always_on" } : {}),
          OTEL_EXPORTER_OTLP_ENDPOINT: otlp,
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        };
  const server = spawn(
    process.execPath,
    [
      join(ROOT, "policy-server/bin/agentsh-policy.mjs"),
      "serve",
      "--addr",
      `127.0.0.1:${serverPort}`,
      "--policy",
      join(ROOT, "policy-server/policies/default.yaml"),
      "--no-watch",
    ],
    { stdio: ["ignore", "ignore", "ignore"], env: { ...process.env, ...otel(serverMetrics) } },
  );
  const portSocket = join(dir, "port.sock");
  let sim: ReturnType<typeof simRun> | undefined;
  let broker: ChildProcess | undefined;
  let scraper: NodeJS.Timeout | undefined;
  try {
    await sleep(1500);
    sim = simRun(portSocket, [
      ...["--paths", "1000000", "--hot-share", "0", "--rate", "0", "--threads", "16"],
      ...["--duration", String(seconds)],
    ]);
    await sleep(200);
    broker = brokerProcess({
      ...otel(brokerMetrics),
      AGENTSH_SIM_SOCKET: portSocket,
      AGENTSH_DRIVER_LIBRARY: SIM_LIB,
      AGENTSH_SERVER_ADDRESSES: `127.0.0.1:${serverPort}`,
      AGENTSH_API_SOCKET: join(dir, "broker.sock"),
      AGENTSH_DRIVER_TIMEOUT_MS: "5000",
    });
    if (mode !== "none") {
      // A Prometheus that scrapes every second (collection is part of the cost).
      scraper = setInterval(() => {
        for (const p of [brokerMetrics, serverMetrics])
          fetch(`http://127.0.0.1:${p}/metrics`)
            .then((r) => r.text())
            .catch(() => {});
      }, 1000);
    }
    const b0 = { t: 0, s: 0 };
    const warm = setTimeout(() => {
      b0.t = cpuSeconds(broker!.pid!);
      b0.s = cpuSeconds(server.pid!);
    }, 500);
    const report = await sim.report.finally(() => clearTimeout(warm));
    const bt = cpuSeconds(broker.pid!) - b0.t;
    const st = cpuSeconds(server.pid!) - b0.s;
    const secs = report.operations / report.ops_per_second;
    return {
      ops: report.operations,
      seconds: secs,
      brokerCpuUsPerOp: (bt * 1e6) / report.operations,
      serverCpuUsPerOp: (st * 1e6) / report.operations,
    };
  } finally {
    if (scraper) clearInterval(scraper);
    if (broker) await stop(broker);
    if (sim) await stop(sim.proc);
    await stop(server);
    rmSync(dir, { recursive: true, force: true });
  }
}

const run: BenchGroup = async ({ quick, log }) => {
  buildBroker();
  const receiver = await otlpReceiver();
  const seconds = quick ? 3 : 6;
  const rounds = quick ? 2 : 4;
  const total: Record<Mode, Round[]> = { none: [], full: [], traced: [] };
  const modes: Mode[] = ["none", "full", "traced"];
  try {
    for (let i = 0; i < rounds; i++) {
      // Rotate the order, so drift over the run favours no mode.
      for (let j = 0; j < modes.length; j++) {
        const mode = modes[(i + j) % modes.length]!;
        const r = await round(mode, seconds, receiver.url);
        total[mode].push(r);
        log(
          `${mode.padEnd(6)} ${(r.ops / r.seconds).toFixed(0)} uncached decisions/s, CPU/decision: broker ${r.brokerCpuUsPerOp.toFixed(1)} us, server ${r.serverCpuUsPerOp.toFixed(1)} us`,
        );
      }
    }
  } finally {
    receiver.close();
  }
  const rate = (rs: Round[]) => rs.reduce((a, r) => a + r.ops, 0) / rs.reduce((a, r) => a + r.seconds, 0);
  const mean = (rs: Round[], f: (r: Round) => number) => rs.reduce((a, r) => a + f(r), 0) / rs.length;
  const none = rate(total.none);
  const full = rate(total.full);
  const traced = rate(total.traced);
  log(`OTLP received: ${(receiver.bytes() / 1e6).toFixed(1)} MB`);
  const cpu = (m: Mode) => mean(total[m], (r) => r.brokerCpuUsPerOp + r.serverCpuUsPerOp);
  return {
    instrumentation_overhead_pct: ((none - full) / none) * 100,
    otel_overhead_pct_all_traced: ((none - traced) / none) * 100,
    otel_cpu_overhead_pct: ((cpu("full") - cpu("none")) / cpu("none")) * 100,
    otel_cpu_overhead_pct_all_traced: ((cpu("traced") - cpu("none")) / cpu("none")) * 100,
    otel_uncached_per_s_none: none,
    otel_uncached_per_s_full: full,
    otel_uncached_per_s_traced: traced,
    otel_broker_cpu_us_per_decision_none: mean(total.none, (r) => r.brokerCpuUsPerOp),
    otel_broker_cpu_us_per_decision_full: mean(total.full, (r) => r.brokerCpuUsPerOp),
    otel_broker_cpu_us_per_decision_traced: mean(total.traced, (r) => r.brokerCpuUsPerOp),
    otel_server_cpu_us_per_decision_none: mean(total.none, (r) => r.serverCpuUsPerOp),
    otel_server_cpu_us_per_decision_full: mean(total.full, (r) => r.serverCpuUsPerOp),
    otel_server_cpu_us_per_decision_traced: mean(total.traced, (r) => r.serverCpuUsPerOp),
  };
};
export default run;
