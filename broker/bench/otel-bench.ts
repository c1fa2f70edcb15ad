// otel group: what OpenTelemetry costs end to end. The whole system as in production (driver
// simulator issuing operations from C, the broker as deployed (bench-procs.ts), `agentsh-policy
// serve`, each its own process) runs an unpaced uncached workload (every operation a new path, so
// every one goes through broker, gRPC and engine: the instrumented path) in interleaved rounds:
//   none:   OTEL_SDK_DISABLED=true (the API is a no-op everywhere)
//   full:   every signal on with the shipped defaults: metrics on the Prometheus endpoints, scraped
//           every second; traces (1% of decisions) and logs exported with OTLP/HTTP to a receiver
//           in this process
//   traced: full, with every decision traced (OTEL_TRACES_SAMPLER=parentbased_always_on)
// Two workloads:
//   agent:   the simulator's synthetic agent (files in its workspace, 10% registry), its session
//            registered with the broker as the agent runtime does it: workspace files are allowed,
//            registry writes denied; only those (about 3%) are audit records
//   audited: the worst case for logging: every operation a write outside any rule (no session
//            registered), so every decision is a deny with an audit record (also an OTLP log record)
// instrumentation_overhead_pct = (throughput none - throughput full) / throughput none * 100 on the
// agent workload, from the summed operations of the rounds; otel_overhead_pct_all_traced the same
// for traced; otel_overhead_pct_all_audited for full on the audited workload; and the CPU each
// process spends per decision (less sensitive to other load on the machine than throughput).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchGroup } from "../../test/bench/main.js";
import { freePort, ROOT, SIM_LIB, sleep } from "../../test/e2e/harness.js";
import { brokerProcess, buildBroker, cpuSeconds, registerSimSession, simRun, stop } from "./bench-procs.js";

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
type Workload = "agent" | "audited";

const WARMUP_S = 2;

async function round(mode: Mode, workload: Workload, seconds: number, otlp: string): Promise<Round> {
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
      ...(workload === "audited" ? ["--write-share", "1", "--registry-share", "0"] : []),
      ...["--warmup", String(WARMUP_S), "--duration", String(seconds)],
    ]);
    await sleep(200);
    const api = join(dir, "broker.sock");
    broker = brokerProcess({
      ...otel(brokerMetrics),
      AGENTSH_SIM_SOCKET: portSocket,
      AGENTSH_DRIVER_LIBRARY: SIM_LIB,
      AGENTSH_SERVER_ADDRESSES: `127.0.0.1:${serverPort}`,
      AGENTSH_API_SOCKET: api,
      AGENTSH_DRIVER_TIMEOUT_MS: "5000",
    });
    if (workload === "agent") await registerSimSession(api);
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
    // From the end of the simulator's warm-up (its report covers the operations after it).
    const warm = setTimeout(() => {
      b0.t = cpuSeconds(broker!.pid!);
      b0.s = cpuSeconds(server.pid!);
    }, WARMUP_S * 1000);
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
  type Kind = `${Workload}/${Mode}`;
  const total: Record<string, Round[]> = {};
  // Each round runs every kind once, in an order rotated from round to round, so drift over the
  // run favours no kind.
  const kinds: Kind[] = ["agent/none", "agent/full", "agent/traced", "audited/none", "audited/full"];
  try {
    for (let i = 0; i < rounds; i++) {
      for (let j = 0; j < kinds.length; j++) {
        const kind = kinds[(i + j) % kinds.length]!;
        const [workload, mode] = kind.split("/") as [Workload, Mode];
        const r = await round(mode, workload, seconds, receiver.url);
        total[kind] = [...(total[kind] ?? []), r];
        log(
          `${kind.padEnd(13)} ${(r.ops / r.seconds).toFixed(0)} uncached decisions/s, CPU/decision: broker ${r.brokerCpuUsPerOp.toFixed(1)} us, server ${r.serverCpuUsPerOp.toFixed(1)} us`,
        );
      }
    }
  } finally {
    receiver.close();
  }
  const rate = (k: Kind) => {
    const rs = total[k]!;
    return rs.reduce((a, r) => a + r.ops, 0) / rs.reduce((a, r) => a + r.seconds, 0);
  };
  const mean = (k: Kind, f: (r: Round) => number) =>
    total[k]!.reduce((a, r) => a + f(r), 0) / total[k]!.length;
  const cpu = (k: Kind) => mean(k, (r) => r.brokerCpuUsPerOp + r.serverCpuUsPerOp);
  const cost = (k: Kind, base: Kind) => ((rate(base) - rate(k)) / rate(base)) * 100;
  const cpuCost = (k: Kind, base: Kind) => ((cpu(k) - cpu(base)) / cpu(base)) * 100;
  log(`OTLP received: ${(receiver.bytes() / 1e6).toFixed(1)} MB`);
  const out: Record<string, number> = {
    instrumentation_overhead_pct: cost("agent/full", "agent/none"),
    otel_overhead_pct_all_traced: cost("agent/traced", "agent/none"),
    otel_overhead_pct_all_audited: cost("audited/full", "audited/none"),
    otel_cpu_overhead_pct: cpuCost("agent/full", "agent/none"),
    otel_cpu_overhead_pct_all_traced: cpuCost("agent/traced", "agent/none"),
    otel_cpu_overhead_pct_all_audited: cpuCost("audited/full", "audited/none"),
  };
  for (const k of kinds) {
    const name = k.replace("/", "_");
    out[`otel_uncached_per_s_${name}`] = rate(k);
    out[`otel_broker_cpu_us_per_decision_${name}`] = mean(k, (r) => r.brokerCpuUsPerOp);
    out[`otel_server_cpu_us_per_decision_${name}`] = mean(k, (r) => r.serverCpuUsPerOp);
  }
  return out;
};
export default run;
