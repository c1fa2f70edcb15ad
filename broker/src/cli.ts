// agentsh-broker: run | status | metrics | config check | session register|unregister|list
import net from "node:net";
import { parseArgs } from "node:util";
import { BrokerService } from "@agentsh/proto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Broker } from "./broker.js";
import { ConfigError, envName, KEYS, loadConfig } from "./config.js";
import { serveLocal, sessionClient, sessionRoutes } from "./session/session-api.js";
import { statusRoutes } from "./status.js";
import { auditHook, createLogger, resultHook, startTelemetry } from "./telemetry.js";

const USAGE = `usage: agentsh-broker <command> [options]

commands:
  run                      connect to the driver and the policy servers, serve the local API
  status                   the running broker's state (driver port, policy version, breaker, counters)
  metrics                  the driver's metrics and the broker's counters
  config check             validate the configuration and print the effective values
  session list             sessions on this host, with process counts and decision counters
  session register --root-pid PID --workspace DIR [--user-sid SID] [--user-profile DIR] [--agent NAME] [--token N]
  session unregister --token N

options:
  --config FILE            YAML configuration (default: $AGENTSH_CONFIG); environment variables win:
${KEYS.map((k) => `                           ${envName(k.path).padEnd(40)} ${k.path}`).join("\n")}
  --socket PATH            local API socket (default: api.socket from the configuration)
  --json                   machine-readable output
  -h, --help
`;

function fail(msg: string, code = 2): never {
  process.stderr.write(`agentsh-broker: ${msg}\n`);
  process.exit(code);
}

const json = (v: unknown) =>
  JSON.stringify(
    v,
    (_k, x) =>
      typeof x === "bigint" ? (x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x.toString()) : x,
    2,
  );

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string" },
      socket: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      "root-pid": { type: "string" },
      workspace: { type: "string" },
      "user-sid": { type: "string" },
      "user-profile": { type: "string" },
      agent: { type: "string" },
      token: { type: "string" },
    },
  });
  const [cmd, sub] = positionals;
  if (values.help || !cmd) {
    process.stdout.write(USAGE);
    return;
  }
  const load = () => {
    try {
      return loadConfig(values.config ?? process.env.AGENTSH_CONFIG);
    } catch (e) {
      if (e instanceof ConfigError) fail(e.message);
      throw e;
    }
  };
  const socket = () => values.socket ?? load().api.socket;
  const token = () => {
    if (!values.token || !/^\d+$/.test(values.token)) fail("--token must be a decimal session token");
    return BigInt(values.token);
  };
  switch (cmd) {
    case "run":
      return run(load());
    case "config":
      if (sub !== "check") fail(`unknown: config ${sub ?? ""} (did you mean: config check)`);
      process.stdout.write(`${json(load())}\n`);
      return;
    case "status":
    case "metrics": {
      const path = socket();
      const client = createClient(
        BrokerService,
        createGrpcTransport({
          baseUrl: "http://localhost",
          nodeOptions: { createConnection: () => net.connect(path) },
        }),
      );
      const s = await client
        .getStatus({})
        .catch((e) => fail(`no broker answers on ${path}: ${(e as Error).message}`, 1));
      if (cmd === "metrics") {
        process.stdout.write(`${json({ driver: s.driverMetrics, broker: s.brokerCounters })}\n`);
      } else if (values.json) process.stdout.write(`${json(s)}\n`);
      else {
        process.stdout.write(
          `host             ${s.host}\ndriver           ${s.driverConnected ? "connected" : "NOT connected"} (${s.driverLibrary})\n` +
            `policy version   ${s.policyVersion || "(none yet)"} (${s.policyVersionChanges} changes)\n` +
            `breaker          ${s.breakerState}\nfail modes       server ${s.serverFailMode}, driver ${s.driverFailMode}\n` +
            `sessions         ${s.sessions}\nvolumes          ${Object.entries(s.volumes)
              .map(([d, v]) => `${d}=${v}`)
              .join(" ")}\n` +
            (s.lastError ? `last error       ${s.lastError}\n` : ""),
        );
      }
      return;
    }
    case "session":
    case "sessions": {
      const c = sessionClient(socket());
      const act = sub ?? "list";
      const call = async <T>(p: Promise<T>) => p.catch((e) => fail((e as Error).message, 1));
      if (act === "list") {
        const r = await call(c.listSessions({}));
        process.stdout.write(`${json(r.sessions)}\n`);
      } else if (act === "register") {
        const pid = Number(values["root-pid"]);
        if (!values["root-pid"] || !Number.isInteger(pid)) fail("session register needs --root-pid PID");
        const r = await call(
          c.registerSession({
            token: values.token ? token() : 0n,
            rootPid: pid,
            workspace: values.workspace ?? "",
            userSid: values["user-sid"] ?? "",
            userProfile: values["user-profile"] ?? "",
            agent: values.agent ?? "",
          }),
        );
        process.stdout.write(`${json(r.session)}\n`);
      } else if (act === "unregister") {
        await call(c.unregisterSession({ token: token() }));
      } else fail(`unknown: session ${act}`);
      return;
    }
    default:
      fail(`unknown command "${cmd}"\n${USAGE}`);
  }
}

async function run(cfg: ReturnType<typeof loadConfig>): Promise<void> {
  const telemetry = await startTelemetry("agentsh-broker", { host: cfg.host });
  const logger = createLogger({ service: "agentsh-broker" });
  const log = (line: string) => logger.info(line);
  const audit = auditHook(logger);
  const broker = new Broker(cfg, {
    log,
    onDecision: audit,
    onDriverDecision: audit,
    ...(cfg.driver.auditResults ? { onEvent: resultHook(logger) } : {}),
  });
  if (telemetry.scrapeUrl) log(`metrics on ${telemetry.scrapeUrl}`);
  const api = await serveLocal(cfg.api.socket, (r) => {
    sessionRoutes(broker)(r);
    statusRoutes(broker)(r);
  });
  log(`local API on ${api.path}`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log("stopping");
    await api.close();
    await broker.stop();
    await telemetry.shutdown();
    logger.flush();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  await broker.start();
}

// Whatever stops the broker from starting (an option it does not know, a file it cannot read, a
// library it cannot load) is one line naming it, not a stack trace.
await main(process.argv.slice(2)).catch((e: Error) => fail(e.message));
