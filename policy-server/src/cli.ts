/**
 * agentsh-policy: serve | check | test | lint | approvals. Run `agentsh-policy --help`.
 */
import { readFileSync } from "node:fs";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { APPROVALS_HELP, approvalsCommand } from "./cli-approvals.js";
import { PolicyEngine } from "./engine.js";
import { checkInputFromJson, decisionToJson } from "./engine-input.js";
import { VolumeMap } from "./path-volumes.js";
import { formatDiagnostic, PolicyError } from "./policy-error.js";
import { lintPolicy } from "./policy-lint.js";
import { runTestFile } from "./policy-test.js";
import { DEFAULT_ADDRESS, startPolicyServer } from "./server.js";
import { consoleLogger } from "./server-store.js";
import { startTelemetry } from "./telemetry.js";

const HELP = `agentsh-policy: the agentsh-win policy server and tools

Usage:
  agentsh-policy serve [--addr HOST:PORT] [--policy FILE] [--tls-cert FILE --tls-key FILE]
                       [--volume-map C:=\\Device\\HarddiskVolume3 ...] [--no-watch]
      Serves gRPC, gRPC-Web and Connect on one port (h2c and HTTP/1.1 on loopback by default,
      TLS when a certificate and key are given), plus grpc.health.v1. The policy file is watched
      and reloaded; an invalid file is logged and the last good version keeps serving.
      Env: AGENTSH_POLICY_ADDR (default ${DEFAULT_ADDRESS}), AGENTSH_POLICY_FILE.

  agentsh-policy check --policy FILE [--volume-map C:=\\Device\\HarddiskVolume3 ...] [--user-sid SID]
      Reads JSON lines on stdin, writes one JSON line per input line, in order:
        {"kind":"file","operation":"write","path":"C:\\\\x","rename_dest":"...",
         "session":{"workspace":"C:\\\\w","user_sid":"S-1-...","user_profile":"C:\\\\Users\\\\u"}}
        {"kind":"registry","operation":"write","path":"HKLM\\\\...","value_name":"x"}
      Output: {"decision":"deny","rule":"secrets","mitre":"T1547.001","cache_ttl_ms":60000,
               "message":"...","pattern":"...","policy_version":"...","canonical_path":"..."}
      A malformed line gets {"error":"..."}. Exit 0, or 2 when the policy cannot load.

  agentsh-policy test FILE...
      Runs policy test files (policy + cases with expected decisions; see README). Exit 1 on
      any failure, 2 when a test file or its policy cannot load.

  agentsh-policy lint FILE... [--json] [--volume-map C:=\\Device\\HarddiskVolume3 ...]
      Schema errors with line and column, unknown keys, pattern errors, and warnings for rules
      that an earlier rule always wins over. Exit 1 when there are errors.

${APPROVALS_HELP}`;

type Options = NonNullable<ParseArgsConfig["options"]>;

/** parseArgs, with --help/-h, and an error for an option given twice (which one would count?). */
function args<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  const all = { ...options, help: { type: "boolean", short: "h" } } as const;
  const r = parseArgs({ args: argv, options: all, allowPositionals, tokens: true });
  const seen = new Set<string>();
  for (const t of r.tokens) {
    if (t.kind !== "option" || all[t.name]?.multiple) continue;
    if (seen.has(t.name)) throw new Error(`--${t.name} given twice`);
    seen.add(t.name);
  }
  return r;
}

/** A file's text, or an error naming the file. */
function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === "EISDIR" ? "it is a directory" : e.code === "ENOENT" ? "no such file" : e.message;
    throw new Error(`cannot read ${file}: ${why}`);
  }
}

function volumeMap(values: string[] | undefined): VolumeMap | undefined {
  if (!values || values.length === 0) return undefined;
  return new VolumeMap(values.map((v) => VolumeMap.parseEntry(v)));
}

async function serve(argv: string[]): Promise<number> {
  const { values } = args(argv, {
    addr: { type: "string" },
    policy: { type: "string" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
    "volume-map": { type: "string", multiple: true },
    "no-watch": { type: "boolean" },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const policyPath = values.policy ?? process.env.AGENTSH_POLICY_FILE;
  if (!policyPath) {
    process.stderr.write("serve: --policy FILE or AGENTSH_POLICY_FILE is required\n");
    return 2;
  }
  let server: Awaited<ReturnType<typeof startPolicyServer>>;
  try {
    server = await startPolicyServer({
      address: values.addr ?? process.env.AGENTSH_POLICY_ADDR ?? DEFAULT_ADDRESS,
      policyPath,
      tlsCert: values["tls-cert"],
      tlsKey: values["tls-key"],
      watch: !values["no-watch"],
      engine: { volumes: volumeMap(values["volume-map"]) },
      logger: consoleLogger,
    });
  } catch (err) {
    process.stderr.write(`${err instanceof PolicyError ? err.format() : (err as Error).message}\n`);
    return 2;
  }
  const telemetry = await startTelemetry("agentsh-policy-server", {
    policyVersion: server.store.current.version,
  });
  if (telemetry.scrapeUrl) consoleLogger.info("metrics", { scrape_url: telemetry.scrapeUrl });
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      server
        .close()
        .then(() => telemetry.shutdown())
        .then(resolve, resolve);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  return 0;
}

async function check(argv: string[]): Promise<number> {
  const { values } = args(argv, {
    policy: { type: "string" },
    "volume-map": { type: "string", multiple: true },
    "user-sid": { type: "string" },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (!values.policy) {
    process.stderr.write("check: --policy FILE is required\n");
    return 2;
  }
  let engine: PolicyEngine;
  let volumes: VolumeMap | undefined;
  try {
    volumes = volumeMap(values["volume-map"]);
    engine = PolicyEngine.fromText(readText(values.policy), {
      file: values.policy,
      volumes,
      userSid: values["user-sid"],
    });
  } catch (err) {
    process.stderr.write(`${err instanceof PolicyError ? err.format() : (err as Error).message}\n`);
    return 2;
  }
  // A reader that goes away (`| head`) ends the run quietly.
  let closed = false;
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
    closed = true;
  });
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let n = 0;
  for await (const bytes of lines(process.stdin)) {
    if (closed) break;
    n++;
    let out: unknown;
    try {
      let line: string;
      try {
        line = utf8.decode(bytes); // a byte order mark at the start is dropped
      } catch {
        throw new Error(`line ${n} is not valid UTF-8`);
      }
      const input = checkInputFromJson(JSON.parse(line));
      out = decisionToJson(engine.decide(input));
    } catch (err) {
      out = { error: err instanceof SyntaxError ? `malformed JSON: ${err.message}` : (err as Error).message };
    }
    if (!process.stdout.write(`${JSON.stringify(out)}\n`))
      await new Promise((r) => {
        process.stdout.once("drain", r);
        process.stdout.once("error", r);
      });
  }
  return 0;
}

/**
 * The lines of a stream as bytes, split at "\n" only, a "\r" before it dropped (JSON allows a bare
 * "\r" as whitespace, so it does not end a line), the last line with or without its "\n".
 */
export async function* lines(input: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  const line = (parts: Buffer[]): Buffer => {
    const b = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    return b.length > 0 && b[b.length - 1] === 13 ? b.subarray(0, b.length - 1) : b;
  };
  for await (const c of input) {
    const chunk = typeof c === "string" ? Buffer.from(c) : c;
    let at = 0;
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, at)) {
      pending.push(chunk.subarray(at, nl));
      yield line(pending);
      pending = [];
      at = nl + 1;
    }
    if (at < chunk.length) pending.push(chunk.subarray(at));
  }
  if (pending.length > 0) yield line(pending);
}

function test(argv: string[]): number {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(HELP);
    return 0;
  }
  if (argv.length === 0) {
    process.stderr.write("test: give one or more test files\n");
    return 2;
  }
  let passed = 0;
  let failed = 0;
  let broken = 0;
  for (const file of argv) {
    const r = runTestFile(file);
    if (r.error) {
      broken++;
      process.stdout.write(`ERROR ${file}: ${r.error}\n`);
      continue;
    }
    for (const c of r.cases) {
      if (c.ok) {
        passed++;
        process.stdout.write(`PASS ${file}: ${c.name}\n`);
      } else {
        failed++;
        process.stdout.write(`FAIL ${file}: ${c.name}\n${c.failures.map((f) => `     ${f}\n`).join("")}`);
      }
    }
  }
  process.stdout.write(`--------------------------------------------------------------------------------\n`);
  process.stdout.write(
    `PASS: ${passed}/${passed + failed}${failed ? `, FAIL: ${failed}` : ""}${broken ? `, ERROR: ${broken} file(s)` : ""}\n`,
  );
  return broken > 0 ? 2 : failed > 0 ? 1 : 0;
}

function lint(argv: string[]): number {
  const { values, positionals } = args(
    argv,
    { json: { type: "boolean" }, "volume-map": { type: "string", multiple: true } },
    true,
  );
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const volumes = volumeMap(values["volume-map"]);
  if (positionals.length === 0) {
    process.stderr.write("lint: give a policy file\n");
    return 2;
  }
  let errors = 0;
  for (const file of positionals) {
    let text: string;
    try {
      text = readText(file);
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n`);
      errors++;
      continue;
    }
    const diags = lintPolicy(text, file, volumes);
    errors += diags.filter((d) => d.severity === "error").length;
    for (const d of diags) process.stdout.write(`${values.json ? JSON.stringify(d) : formatDiagnostic(d)}\n`);
    if (!values.json && diags.length === 0) process.stdout.write(`${file}: ok\n`);
  }
  return errors > 0 ? 1 : 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case "serve":
        return await serve(rest);
      case "check":
        return await check(rest);
      case "test":
        return test(rest);
      case "lint":
        return lint(rest);
      case "approvals":
        return await approvalsCommand(rest);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(HELP);
        return cmd === undefined ? 2 : 0;
      default:
        process.stderr.write(`unknown command ${cmd}\n${HELP}`);
        return 2;
    }
  } catch (err) {
    process.stderr.write(`${cmd}: ${(err as Error).message}\n`);
    return 2;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.env.AGENTSH_POLICY_CLI === "1") {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
