// `npm start`: the whole system on this machine with the embedded defaults. A policy server on
// policy-server/policies/default.yaml, the driver simulator (the minifilter's C core behind its
// emulated port), and the broker between them; a coding agent's build replays through the
// simulator while a live summary updates in place.
//   --seconds N                   stop after N seconds (default 20) and print the final table
//   --rate N                      operations per second offered (default 400)
//   --scenario server-outage      stop the policy server a third of the way in, start it again at
//                                 two thirds: fail mode, stale answers, and recovery
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ApprovalService, Decision } from "@agentsh/proto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  freePort,
  type OpResult,
  type ServerHandle,
  SIM_LIB,
  type SimHandle,
  sleep,
  startServer,
  startSim,
} from "../../../test/e2e/harness.js";
import { Broker } from "../broker.js";
import { loadConfig } from "../config.js";
import { serveLocal, sessionRoutes } from "../session/session-api.js";
import { statusRoutes } from "../status.js";
import { startTelemetry } from "../telemetry.js";
import { Summary } from "./demo-summary.js";
import { SESSION, spawnTree, workload } from "./demo-workload.js";

const ROOT = resolve(import.meta.dirname, "../../..");

function usage(): never {
  process.stdout.write("usage: npm start -- [--seconds N] [--rate N] [--scenario server-outage]\n");
  process.exit(0);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string", default: "20" },
      rate: { type: "string", default: "400" },
      scenario: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) usage();
  const seconds = Number(values.seconds);
  const rate = Number(values.rate);
  if (!Number.isFinite(seconds) || seconds <= 0)
    throw new Error(`--seconds must be a positive number, got ${values.seconds}`);
  if (!Number.isFinite(rate) || rate <= 0 || rate > 20_000)
    throw new Error(`--rate must be 1..20000, got ${values.rate}`);
  if (values.scenario && values.scenario !== "server-outage")
    throw new Error(`unknown --scenario ${values.scenario} (known: server-outage)`);
  const outage = values.scenario === "server-outage";

  const dir = mkdtempSync(join(tmpdir(), "agentsh-demo-"));
  const policyPath = join(dir, "policy.yaml");
  writeFileSync(policyPath, readFileSync(join(ROOT, "policy-server/policies/default.yaml")));
  const summary = new Summary();
  const tty = process.stdout.isTTY === true;
  const log = (line: string) => summary.note(line);

  let server: ServerHandle | undefined = await startServer(policyPath, { port: await freePort() });
  const serverPort = server.port;
  log(`policy server on 127.0.0.1:${serverPort} (${policyPath})`);
  const sim: SimHandle = await startSim(dir);
  process.env.AGENTSH_SIM_SOCKET = sim.portSocket;
  const config = loadConfig(undefined, {
    ...process.env,
    AGENTSH_SERVER_ADDRESSES: `127.0.0.1:${serverPort}`,
    AGENTSH_DRIVER_LIBRARY: SIM_LIB,
    AGENTSH_API_SOCKET: join(dir, "broker.sock"),
    AGENTSH_SERVER_STALE_IF_ERROR_MS: process.env.AGENTSH_SERVER_STALE_IF_ERROR_MS ?? "15000",
    AGENTSH_SERVER_BREAKER_PROBE_INTERVAL_MS: process.env.AGENTSH_SERVER_BREAKER_PROBE_INTERVAL_MS ?? "500",
  });
  // Metrics of the broker and of the in-process policy server on one Prometheus endpoint (the
  // standard OTEL_* variables apply; OTEL_EXPORTER_PROMETHEUS_PORT moves it).
  const telemetry = await startTelemetry("agentsh-broker", { host: config.host });
  const metricsUrl = telemetry.scrapeUrl;
  if (metricsUrl) log(`metrics: ${metricsUrl}`);
  const broker = new Broker(config, {
    onDecision: (rec) => summary.onDecision(rec),
    log,
  });
  const api = await serveLocal(config.api.socket, (r) => {
    sessionRoutes(broker)(r);
    statusRoutes(broker)(r);
  });
  await broker.start();
  broker.registerSession(SESSION);
  await spawnTree(sim.ctl);
  log(
    `session ${SESSION.token} registered; broker API on ${api.path} (agentsh-broker status --socket ${api.path})`,
  );

  // A human operator for approvals: approves the agent's own helper service, refuses the rest.
  const approvals = createClient(
    ApprovalService,
    createConnectTransport({ baseUrl: `http://127.0.0.1:${serverPort}`, httpVersion: "1.1" }),
  );
  let operator = true;
  const operate = async () => {
    while (operator) {
      await sleep(200);
      try {
        const { approvals: pending } = await approvals.listApprovals({});
        for (const a of pending) {
          const allow = a.path.toLowerCase().includes("agenthelper");
          await approvals.resolveApproval({
            approvalId: a.id,
            decision: allow ? Decision.ALLOW : Decision.DENY,
            resolvedBy: "demo-operator",
            reason: allow ? "the agent's own helper service" : "not this service",
          });
          log(`operator ${allow ? "approved" : "refused"}: ${a.message || a.path}`);
        }
      } catch (e) {
        if (ConnectError.from(e).code === Code.Unimplemented) {
          log("this policy server has no approval service: approvals will time out (deny)");
          return;
        }
      }
    }
  };
  const operatorDone = operate();

  // The outage scenario.
  const timers: NodeJS.Timeout[] = [];
  if (outage) {
    timers.push(
      setTimeout(
        async () => {
          log("SCENARIO: policy server stopped");
          const s = server;
          server = undefined;
          await s?.stop();
        },
        (seconds * 1000) / 3,
      ),
      setTimeout(
        async () => {
          server = await startServer(policyPath, { port: serverPort });
          log("SCENARIO: policy server started again");
        },
        (2 * seconds * 1000) / 3,
      ),
    );
  }

  const status = () => ({
    broker: broker.port.connected ? "connected" : "disconnected",
    breaker: broker.relay.breakerState,
    driver: broker.port.connected ? "ok" : "?",
    policy: broker.policyVersion || "?",
    ...(metricsUrl ? { metricsUrl } : {}),
  });
  const draw = () => {
    if (tty) process.stdout.write(`\x1b[H\x1b[J${summary.render(status())}\n`);
  };
  const redraw = setInterval(draw, 250);
  const progress = setInterval(() => {
    if (!tty)
      process.stdout.write(
        `[${((Date.now() - summary.startedAt) / 1000).toFixed(0)}s] ${summary.ops} decisions, breaker ${broker.relay.breakerState}\n`,
      );
  }, 5000);

  // Paced replay with a few concurrent "threads" so slow answers (approvals) do not stall the rest.
  const until = Date.now() + seconds * 1000;
  const ops = workload();
  const interval = 1000 / rate;
  let next = Date.now();
  const worker = async () => {
    while (Date.now() < until) {
      const at = next;
      next += interval;
      const wait = at - Date.now();
      if (wait > 0) await sleep(wait);
      const op = ops.next().value!;
      const r =
        op.cmd === "file"
          ? await sim.ctl.file(op.pid, op.op, op.path, op.extra)
          : await sim.ctl.registry(op.pid, op.op, op.path, op.extra);
      summary.onResult(r as OpResult);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));

  operator = false;
  for (const t of timers) clearTimeout(t);
  clearInterval(redraw);
  clearInterval(progress);
  await operatorDone;
  const final = summary.render(status(), true);
  process.stdout.write(`${tty ? "\x1b[H\x1b[J" : "\n"}${final}\n`);
  if (outage) process.stdout.write(`\n${summary.renderTimeline()}\n`);
  await api.close();
  await broker.stop();
  await sim.stop();
  await server?.stop();
  await telemetry.shutdown();
  rmSync(dir, { recursive: true, force: true });
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`demo: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
