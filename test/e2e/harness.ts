// End-to-end harness: the real driver simulator (C core, emulated port), the real broker and real
// policy servers, wired on loopback and Unix sockets in a temporary directory. Used by the
// end-to-end tests, the e2e benchmark and the demo.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Broker, type BrokerHooks } from "../../broker/src/broker.js";
import { type BrokerConfig, envName, loadConfig } from "../../broker/src/config.js";
import { type PolicyServer, startPolicyServer } from "../../policy-server/src/server.js";

export const ROOT = resolve(import.meta.dirname, "../..");
export const SIM_BIN = join(ROOT, "driver/build/agentsh-sim");
export const SIM_LIB = join(ROOT, "driver/build/libfltsim.so");
const POLICY_CLI = join(ROOT, "policy-server/bin/agentsh-policy.mjs");

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => res(port));
    });
  });
}

/** Whether `p` has not exited yet. */
export function running(p: ChildProcess): boolean {
  return p.exitCode === null && p.signalCode === null;
}

/** SIGTERM `p` if it is still running and wait for its exit (with `killAfterMs`, SIGKILL it then). */
export async function terminate(p: ChildProcess, killAfterMs?: number): Promise<void> {
  if (!running(p)) return;
  const exited = new Promise((r) => p.once("exit", r));
  p.kill("SIGTERM");
  if (killAfterMs === undefined) await exited;
  else await Promise.race([exited, sleep(killAfterMs).then(() => p.kill("SIGKILL"))]);
}

export async function waitFor(
  what: string,
  ok: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await ok()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** True when something accepts connections: TCP on 127.0.0.1:`where` (a port), or the Unix socket `where` (a path). */
export const canConnect = (where: number | string) =>
  new Promise<boolean>((res) => {
    const s = net.connect(
      typeof where === "number" ? { port: where, host: "127.0.0.1" } : { path: where },
      () => {
        s.destroy();
        res(true);
      },
    );
    s.on("error", () => res(false));
  });

// -- policy servers ------------------------------------------------------------------------------

export interface ServerHandle {
  port: number;
  address: string;
  /** In-process servers: reload with new policy text (a new version is announced). */
  reload(text: string): void;
  stop(): Promise<void>;
  /** Child-process servers: SIGKILL, as a crashed replica. */
  kill(): void;
}

export async function startServer(
  policyPath: string,
  opts: { process?: boolean; port?: number; env?: Record<string, string> } = {},
): Promise<ServerHandle> {
  const port = opts.port ?? (await freePort());
  if (!opts.process) {
    const s: PolicyServer = await startPolicyServer({
      address: `127.0.0.1:${port}`,
      policyPath,
      watch: true,
      shutdownGraceMs: 200,
    });
    return {
      port: s.port,
      address: `127.0.0.1:${s.port}`,
      reload: (text) => {
        writeFileSync(policyPath, text);
        const r = s.reload(text) as { ok?: boolean; error?: unknown };
        if (r && r.ok === false) throw new Error(`reload refused: ${String(r.error)}`);
      },
      stop: () => s.close(),
      kill: () => void s.close(),
    };
  }
  const child = spawn(
    process.execPath,
    [POLICY_CLI, "serve", "--addr", `127.0.0.1:${port}`, "--policy", policyPath],
    {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, ...opts.env },
    },
  );
  let err = "";
  child.stderr!.on("data", (d) => {
    err += d;
  });
  await waitFor(
    `policy server on ${port} (${err.slice(-300)})`,
    async () => child.exitCode === null && (await canConnect(port)),
  );
  return {
    port,
    address: `127.0.0.1:${port}`,
    reload: (text) => writeFileSync(policyPath, text),
    stop: () => terminate(child),
    kill: () => child.kill("SIGKILL"),
  };
}

// -- simulator ----------------------------------------------------------------------------------

export interface OpResult {
  result: "allow" | "deny";
  source: "cache" | "broker" | "failmode" | "excluded" | "untracked";
  latency_us: number;
  latency_ns: number;
  session: string;
  collapsed: boolean;
  pending: boolean;
  /** The driver queued a MSG_DECISION_EVENT for this decision (it decided alone). */
  reported?: true;
  error?: string;
}

/** JSON-lines control connections to the simulator; `pool` of them for concurrent operations. */
export class SimControl {
  private readonly conns: Array<{
    sock: net.Socket;
    queue: Array<(line: string) => void>;
    buf: string;
    busy: number;
  }> = [];
  private next = 0;

  static async open(path: string, pool = 4): Promise<SimControl> {
    const c = new SimControl();
    for (let i = 0; i < pool; i++) {
      const sock = await new Promise<net.Socket>((res, rej) => {
        const s = net.connect(path, () => res(s));
        s.once("error", rej);
      });
      const conn = { sock, queue: [] as Array<(line: string) => void>, buf: "", busy: 0 };
      sock.setEncoding("utf8");
      sock.on("data", (d: string) => {
        conn.buf += d;
        for (let i = conn.buf.indexOf("\n"); i >= 0; i = conn.buf.indexOf("\n")) {
          const line = conn.buf.slice(0, i);
          conn.buf = conn.buf.slice(i + 1);
          conn.busy--;
          conn.queue.shift()?.(line);
        }
      });
      c.conns.push(conn);
    }
    return c;
  }

  /** Sends one command; resolves with the parsed reply line. Commands on one connection are in order. */
  request<T = Record<string, unknown>>(cmd: Record<string, unknown>): Promise<T> {
    const conn = this.conns.reduce(
      (a, b) => (b.busy < a.busy ? b : a),
      this.conns[this.next++ % this.conns.length]!,
    );
    conn.busy++;
    return new Promise((res) => {
      conn.queue.push((line) => res(JSON.parse(line) as T));
      conn.sock.write(`${JSON.stringify(cmd)}\n`);
    });
  }

  file(pid: number, op: string, path: string, extra: Record<string, unknown> = {}): Promise<OpResult> {
    return this.request<OpResult>({ cmd: "file", pid, op, path, ...extra });
  }

  registry(pid: number, op: string, key: string, extra: Record<string, unknown> = {}): Promise<OpResult> {
    return this.request<OpResult>({ cmd: "registry", pid, op, key, ...extra });
  }

  spawn(pid: number, creator: number, image = "C:\\Windows\\System32\\cmd.exe") {
    return this.request({ cmd: "spawn", pid, creator, image });
  }

  metrics() {
    return this.request<{ metrics: Record<string, number>; port: Record<string, number> }>({
      cmd: "metrics",
    });
  }

  close(): void {
    for (const c of this.conns) c.sock.destroy();
  }
}

export interface SimHandle {
  proc: ChildProcess;
  portSocket: string;
  controlSocket: string;
  ctl: SimControl;
  stop(): Promise<void>;
}

export async function startSim(dir: string, args: string[] = []): Promise<SimHandle> {
  const portSocket = join(dir, "port.sock");
  const controlSocket = join(dir, "control.sock");
  const proc = spawn(
    SIM_BIN,
    ["serve", "--port-socket", portSocket, "--control-socket", controlSocket, ...args],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let err = "";
  proc.stderr!.on("data", (d) => {
    err += d;
  });
  // The socket file exists from bind(), before listen(): a connection in between is refused, so
  // wait until one is accepted (a CI run once failed with ECONNREFUSED here).
  let ctl: SimControl;
  try {
    await waitFor(
      `simulator (${err.slice(-300)})`,
      async () => proc.exitCode === null && existsSync(portSocket) && (await canConnect(controlSocket)),
    );
    ctl = await SimControl.open(controlSocket);
  } catch (e) {
    proc.kill("SIGKILL"); // a failed start leaves no simulator behind
    throw e;
  }
  return {
    proc,
    portSocket,
    controlSocket,
    ctl,
    stop: async () => {
      ctl.close();
      await terminate(proc);
    },
  };
}

// -- the whole stack -----------------------------------------------------------------------------

export interface StackOptions {
  policy: string;
  /** Policy server replicas; child processes when `processes` is set (so they can be SIGKILLed). */
  replicas?: number;
  processes?: boolean;
  /** Extra environment of child-process replica i (e.g. its OTEL_EXPORTER_PROMETHEUS_PORT). */
  serverEnv?: (i: number) => Record<string, string>;
  /** Broker configuration as AGENTSH_* variables (merged over the test defaults). */
  env?: Record<string, string>;
  hooks?: BrokerHooks;
  simArgs?: string[];
}

export interface Stack {
  dir: string;
  policyPath: string;
  servers: ServerHandle[];
  sim: SimHandle;
  broker: Broker;
  config: BrokerConfig;
  /** Stops the broker and starts a new one with the same configuration. */
  restartBroker(): Promise<void>;
  stopBroker(): Promise<void>;
  startBroker(): Promise<void>;
  stop(): Promise<void>;
}

export const TEST_ENV: Record<string, string> = {
  AGENTSH_DRIVER_TIMEOUT_MS: "1000",
  AGENTSH_SERVER_BUDGET_MS: "800",
  AGENTSH_SERVER_BREAKER_FAILURES: "3",
  AGENTSH_SERVER_BREAKER_PROBE_INTERVAL_MS: "100",
  AGENTSH_DRIVER_PROBE_INTERVAL_MS: "200",
  AGENTSH_DRIVER_MAX_CONSECUTIVE_FAILURES: "3",
  AGENTSH_DRIVER_READERS: "2",
  AGENTSH_SERVER_STREAMS: "2",
};

export async function startStack(opts: StackOptions): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), "agentsh-e2e-"));
  const policyPath = join(dir, "policy.yaml");
  writeFileSync(policyPath, opts.policy);
  const servers: ServerHandle[] = [];
  for (let i = 0; i < (opts.replicas ?? 1); i++)
    servers.push(await startServer(policyPath, { process: opts.processes, env: opts.serverEnv?.(i) }));
  const sim = await startSim(dir, opts.simArgs);
  // libfltsim finds the simulator through this variable (read at FilterConnectCommunicationPort).
  process.env.AGENTSH_SIM_SOCKET = sim.portSocket;
  const env = {
    ...TEST_ENV,
    [envName("server.addresses")]: servers.map((s) => s.address).join(","),
    [envName("driver.library")]: SIM_LIB,
    [envName("api.socket")]: join(dir, "broker.sock"),
    [envName("state_file")]: join(dir, "broker-state", "sessions.json"),
    ...opts.env,
  };
  const config = loadConfig(undefined, env);
  const stack: Stack = {
    dir,
    policyPath,
    servers,
    sim,
    config,
    broker: new Broker(config, opts.hooks),
    async startBroker() {
      stack.broker = new Broker(config, opts.hooks);
      await stack.broker.start();
    },
    async stopBroker() {
      await stack.broker.stop();
    },
    async restartBroker() {
      await stack.stopBroker();
      await stack.startBroker();
    },
    async stop() {
      await stack.broker.stop().catch(() => {});
      await sim.stop();
      for (const s of servers) await s.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await stack.broker.start();
  return stack;
}
