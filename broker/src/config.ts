// Broker configuration: one YAML file plus environment variables (the environment wins), parsed and
// validated in one place. Every key has an environment name derived from its path
// (server.fail_mode -> AGENTSH_SERVER_FAIL_MODE). Errors name the key and where the value came from.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { isMap, LineCounter, parseDocument } from "yaml";
import { ConfigFlag, ConfigLimits, FailMode } from "./port/protocol.js";

type Kind = "int" | "string" | "list" | "enum" | "bool";
interface KeySpec {
  path: string;
  kind: Kind;
  def: unknown;
  min?: number;
  max?: number;
  values?: readonly string[];
  /** More checks of a coerced value: why it is wrong, or undefined. */
  check?: (value: never) => string | undefined;
  help: string;
}

const L = ConfigLimits;
const DEFAULT_SOCKET =
  process.platform === "win32" ? "\\\\.\\pipe\\agentsh-broker" : "/tmp/agentsh-broker.sock";

export const KEYS: readonly KeySpec[] = [
  {
    path: "server.addresses",
    kind: "list",
    def: ["127.0.0.1:7443"],
    check: checkAddresses,
    help: "policy-server replicas (host:port list or dns:///name:port)",
  },
  {
    path: "server.tls.ca",
    kind: "string",
    def: "",
    help: "CA bundle (PEM) to verify the servers; plaintext h2c when no TLS file is set",
  },
  { path: "server.tls.cert", kind: "string", def: "", help: "client certificate (PEM) for mutual TLS" },
  { path: "server.tls.key", kind: "string", def: "", help: "client key (PEM) for mutual TLS" },
  {
    path: "server.fail_mode",
    kind: "enum",
    def: "closed",
    values: ["open", "closed"],
    help: "answer when no server can decide",
  },
  {
    path: "server.budget_ms",
    kind: "int",
    def: 0,
    min: 0,
    max: 59_000,
    help: "deadline per check; 0 = driver timeout minus a margin",
  },
  { path: "server.streams", kind: "int", def: 4, min: 1, max: 64, help: "check streams kept open" },
  {
    path: "server.keepalive_ms",
    kind: "int",
    def: 10_000,
    min: 1000,
    max: 600_000,
    help: "HTTP/2 keepalive ping interval",
  },
  {
    path: "server.breaker.failures",
    kind: "int",
    def: 5,
    min: 1,
    max: 1000,
    help: "consecutive failures that open the breaker",
  },
  {
    path: "server.breaker.probe_interval_ms",
    kind: "int",
    def: 1000,
    min: 50,
    max: 60_000,
    help: "probe interval while open",
  },
  {
    path: "server.stale_if_error_ms",
    kind: "int",
    def: 0,
    min: 0,
    max: 86_400_000,
    help: "reuse the last answer this long when the server is down (0 = off)",
  },
  {
    path: "driver.library",
    kind: "string",
    def: "",
    help: "fltlib ABI library (default fltlib.dll on Windows, the simulator's elsewhere)",
  },
  { path: "driver.port", kind: "string", def: "\\AgentshPort", help: "filter communication port name" },
  {
    path: "driver.readers",
    kind: "int",
    def: 16,
    min: 1,
    max: 64,
    help: "overlapped FilterGetMessage calls kept pending on the port (the driver never waits for a reader)",
  },
  {
    path: "driver.fail_mode",
    kind: "enum",
    def: "open",
    values: ["open", "closed"],
    help: "driver's answer when the broker cannot",
  },
  {
    path: "driver.timeout_ms",
    kind: "int",
    def: L.PolicyQueryTimeoutMs.default,
    min: L.PolicyQueryTimeoutMs.min,
    max: L.PolicyQueryTimeoutMs.max,
    help: "driver's wait for the broker",
  },
  {
    path: "driver.max_consecutive_failures",
    kind: "int",
    def: L.MaxConsecutiveFailures.default,
    min: L.MaxConsecutiveFailures.min,
    max: L.MaxConsecutiveFailures.max,
    help: "failures before the driver answers by fail mode",
  },
  {
    path: "driver.cache_max_entries",
    kind: "int",
    def: L.CacheMaxEntries.default,
    min: L.CacheMaxEntries.min,
    max: L.CacheMaxEntries.max,
    help: "driver decision cache capacity",
  },
  {
    path: "driver.cache_default_ttl_ms",
    kind: "int",
    def: L.CacheDefaultTTLMs.default,
    min: L.CacheDefaultTTLMs.min,
    max: L.CacheDefaultTTLMs.max,
    help: "TTL when the answer asks for the default",
  },
  {
    path: "driver.cache_max_ttl_ms",
    kind: "int",
    def: L.CacheMaxTTLMs.default,
    min: L.CacheMaxTTLMs.min,
    max: L.CacheMaxTTLMs.max,
    help: "cap on any answer's TTL",
  },
  {
    path: "driver.probe_interval_ms",
    kind: "int",
    def: L.ProbeIntervalMs.default,
    min: L.ProbeIntervalMs.min,
    max: L.ProbeIntervalMs.max,
    help: "driver's probe interval while failing",
  },
  {
    path: "driver.audit_results",
    kind: "bool",
    def: false,
    help: "the driver also reports the outcome of every registry operation (logged as audit records)",
  },
  {
    path: "driver.decision_events",
    kind: "bool",
    def: true,
    help: "the driver reports the decisions it makes alone (denials repeated from its cache, fail-mode answers) so each gets an audit record",
  },
  {
    path: "api.socket",
    kind: "string",
    def: DEFAULT_SOCKET,
    check: (v: string) =>
      v.trim() === ""
        ? "must be a socket path or pipe name"
        : /^\d+$/.test(v.trim())
          ? `must be a socket path or pipe name, not a port (${v})`
          : undefined,
    help: "local sessions API (Unix socket / named pipe)",
  },
  {
    path: "state_file",
    kind: "string",
    def: "",
    help: "where registered sessions are kept across restarts (empty = memory only)",
  },
  {
    path: "host",
    kind: "string",
    def: "",
    help: "host name reported to the server (default: this machine's)",
  },
];

export const envName = (path: string) => `AGENTSH_${path.replace(/\./g, "_").toUpperCase()}`;

export interface BrokerConfig {
  server: {
    addresses: string[];
    tls: { ca: string; cert: string; key: string };
    failMode: "open" | "closed";
    budgetMs: number;
    streams: number;
    keepaliveMs: number;
    breaker: { failures: number; probeIntervalMs: number };
    staleIfErrorMs: number;
  };
  driver: {
    library: string;
    port: string;
    readers: number;
    failMode: "open" | "closed";
    timeoutMs: number;
    maxConsecutiveFailures: number;
    cacheMaxEntries: number;
    cacheDefaultTtlMs: number;
    cacheMaxTtlMs: number;
    probeIntervalMs: number;
    auditResults: boolean;
    decisionEvents: boolean;
  };
  api: { socket: string };
  stateFile: string;
  host: string;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid broker configuration:\n  ${problems.join("\n  ")}`);
  }
}

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** Loads and validates. `file` may be undefined (defaults + environment only). */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): BrokerConfig {
  const problems: string[] = [];
  const raw = new Map<string, { value: unknown; where: string }>();
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new ConfigError([`${file}: cannot read: ${(e as Error).message}`]);
    }
    const lc = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
    for (const err of doc.errors) {
      const p = lc.linePos(err.pos[0]);
      problems.push(`${file}:${p.line}:${p.col}: ${err.message.split("\n")[0]}`);
    }
    if (!doc.errors.length && doc.contents !== null) {
      if (!isMap(doc.contents)) problems.push(`${file}: the top level must be a mapping of keys`);
      else
        walk(doc.contents, "", (path, value, pos) => {
          const at = pos !== undefined ? lc.linePos(pos) : undefined;
          const where = at ? `${file}:${at.line}:${at.col}` : file;
          if (!KEYS.some((k) => k.path === path)) problems.push(`${where}: unknown key "${path}"`);
          else raw.set(path, { value, where });
        });
    }
  }
  // A variable named like a broker setting that is none (AGENTSH_SERVER_ADDRESS) is refused, as an
  // unknown YAML key is: ignored, it would leave the setting at its default unnoticed.
  const known = new Set(KEYS.map((k) => envName(k.path)));
  for (const name of Object.keys(env)) {
    if (!/^AGENTSH_(SERVER|DRIVER|API|STATE|HOST)(_|$)/.test(name) || known.has(name)) continue;
    const near = [...known].sort((a, b) => distance(a, name) - distance(b, name))[0]!;
    problems.push(`environment ${name}: not a broker setting (did you mean ${near}?)`);
  }
  for (const k of KEYS) {
    const name = envName(k.path);
    const v = env[name];
    // Blank is unset, as an empty variable is.
    if (v !== undefined && v.trim() !== "") raw.set(k.path, { value: v, where: `environment ${name}` });
  }
  const out: Record<string, unknown> = {};
  for (const k of KEYS) {
    const r = raw.get(k.path);
    let value = r ? coerce(k, r.value, r.where, problems) : k.def;
    const why = r && value !== k.def ? k.check?.(value as never) : undefined;
    if (why !== undefined) {
      problems.push(`${r!.where}: ${k.path} ${why}`);
      value = k.def;
    }
    setPath(out, k.path.split(".").map(camel), value);
  }
  const cfg = out as unknown as BrokerConfig;
  if (!cfg.host) cfg.host = hostname();
  const budget = cfg.server.budgetMs;
  const timeout = cfg.driver.timeoutMs;
  if (budget === 0) cfg.server.budgetMs = Math.max(50, timeout - Math.max(50, Math.ceil(timeout * 0.1)));
  else if (budget >= timeout) {
    problems.push(
      `server.budget_ms (${budget}) must be shorter than driver.timeout_ms (${timeout}): the broker must answer before the driver gives up`,
    );
  }
  if (cfg.driver.cacheMaxTtlMs < cfg.driver.cacheDefaultTtlMs) {
    problems.push(
      `driver.cache_max_ttl_ms (${cfg.driver.cacheMaxTtlMs}) must be >= driver.cache_default_ttl_ms (${cfg.driver.cacheDefaultTtlMs})`,
    );
  }
  if (cfg.server.addresses.length === 0)
    problems.push("server.addresses: at least one policy server is required");
  const tls = cfg.server.tls;
  if ((tls.cert === "") !== (tls.key === "")) problems.push("server.tls.cert and server.tls.key go together");
  if (problems.length) throw new ConfigError(problems);
  return cfg;
}

/** The driver config (SET_CONFIG) the broker pushes at every connect. */
export function driverConfigOf(cfg: BrokerConfig) {
  const d = cfg.driver;
  return {
    failMode: d.failMode === "open" ? FailMode.OPEN : FailMode.CLOSED,
    policyQueryTimeoutMs: d.timeoutMs,
    maxConsecutiveFailures: d.maxConsecutiveFailures,
    cacheMaxEntries: d.cacheMaxEntries,
    cacheDefaultTTLMs: d.cacheDefaultTtlMs,
    cacheMaxTTLMs: d.cacheMaxTtlMs,
    probeIntervalMs: d.probeIntervalMs,
    flags:
      (d.auditResults ? ConfigFlag.AUDIT_RESULTS : 0) | (d.decisionEvents ? ConfigFlag.DECISION_EVENTS : 0),
  };
}

function walk(
  node: unknown,
  prefix: string,
  visit: (path: string, value: unknown, pos?: number) => void,
): void {
  const map = node as { items: Array<{ key: { value: unknown; range?: number[] }; value: unknown }> };
  for (const item of map.items) {
    const key = String(item.key?.value);
    const path = prefix ? `${prefix}.${key}` : key;
    const v = item.value as { range?: number[]; toJSON?: () => unknown } | null;
    if (isMap(v) && !KEYS.some((k) => k.path === path)) walk(v, path, visit);
    else visit(path, v && typeof v.toJSON === "function" ? v.toJSON() : v, item.key?.range?.[0]);
  }
}

function coerce(k: KeySpec, value: unknown, where: string, problems: string[]): unknown {
  const bad = (why: string) => {
    problems.push(`${where}: ${k.path} ${why}`);
    return k.def;
  };
  switch (k.kind) {
    case "int": {
      // Decimal digits only: Number() would also take "", "0x10", "0b1" and "2e4".
      const text = typeof value === "string" ? value.trim() : undefined;
      if (text !== undefined && !/^-?\d+$/.test(text))
        return bad(`must be an integer, got ${JSON.stringify(value)}`);
      const n = text !== undefined ? Number(text) : value;
      if (typeof n !== "number" || !Number.isInteger(n))
        return bad(`must be an integer, got ${JSON.stringify(value)}`);
      if ((k.min !== undefined && n < k.min) || (k.max !== undefined && n > k.max)) {
        return bad(`must be within ${k.min}..${k.max}, got ${n}`);
      }
      return n;
    }
    case "enum": {
      const s = String(value).trim().toLowerCase();
      if (!k.values!.includes(s))
        return bad(`must be one of ${k.values!.join(" | ")}, got ${JSON.stringify(value)}`);
      return s;
    }
    case "list": {
      if (Array.isArray(value) && value.some((x) => typeof x !== "string" && typeof x !== "number"))
        return bad(`must be a list of strings, got ${JSON.stringify(value)}`);
      const list = Array.isArray(value)
        ? value.map(String)
        : typeof value === "string"
          ? value.split(",")
          : null;
      if (!list) return bad(`must be a list or a comma-separated string, got ${JSON.stringify(value)}`);
      return list.map((s) => s.trim()).filter(Boolean);
    }
    case "bool": {
      if (typeof value === "boolean") return value;
      if (/^(true|1|yes)$/i.test(String(value))) return true;
      if (/^(false|0|no)$/i.test(String(value))) return false;
      return bad(`must be true or false, got ${JSON.stringify(value)}`);
    }
    default:
      if (typeof value !== "string" && typeof value !== "number")
        return bad(`must be a string, got ${JSON.stringify(value)}`);
      return String(value);
  }
}

/**
 * server.addresses: `dns:///name:port`, or `host:port` with an IPv4 address, a bracketed IPv6 one
 * or a name, the port 1..65535; several only as all IPv4 or all IPv6 (one grpc-js target, see
 * targetOf in relay/relay-grpc.ts), none twice.
 */
function checkAddresses(list: string[]): string | undefined {
  if (list.length === 0) return "must name at least one policy server";
  for (const a of list) {
    const m = /^(?:dns:\/\/\/)?(\[[0-9A-Fa-f:.]+\]|[^:[\]\s]+):(\d+)$/.exec(a);
    if (!m) {
      if (/^[0-9A-Fa-f]*:[0-9A-Fa-f]*:/.test(a))
        return `"${a}": an IPv6 address needs brackets, as [::1]:7443`;
      return `"${a}" must be host:port (or dns:///name:port)`;
    }
    const port = Number(m[2]);
    if (port < 1 || port > 65535) return `"${a}": port ${m[2]} is not within 1..65535`;
  }
  const dup = list.find((a, i) => list.indexOf(a) !== i);
  if (dup !== undefined) return `"${dup}" is listed twice`;
  if (list.length > 1) {
    if (addressFamily(list) === undefined)
      return "lists several servers: they must be all IPv4 or all IPv6 addr:port; use one DNS name (dns:///name:port) for a named fleet";
  }
  return undefined;
}

/** Edit distance of two names (for a suggestion). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** "ipv4" or "ipv6" when every address of `list` is an addr:port of that family (what one grpc-js
 * target can list), else undefined. */
export function addressFamily(list: readonly string[]): "ipv4" | "ipv6" | undefined {
  if (list.every((a) => /^\d+\.\d+\.\d+\.\d+:\d+$/.test(a))) return "ipv4";
  if (list.every((a) => /^\[[0-9A-Fa-f:.]+\]:\d+$/.test(a))) return "ipv6";
  return undefined;
}

function setPath(obj: Record<string, unknown>, parts: string[], value: unknown): void {
  let o = obj;
  for (const p of parts.slice(0, -1)) {
    o[p] ??= {};
    o = o[p] as Record<string, unknown>;
  }
  o[parts.at(-1)!] = value;
}
