// The dashboards and alerts against a real Prometheus (Debian's package, installed by
// test/setup/ensure.mjs): the simulator drives a workload through the real broker (this process,
// its own Prometheus endpoint) and a real policy server (a child process, another endpoint);
// Prometheus scrapes both every second. Then every panel query of every dashboard and every alert
// expression must return data, a refused policy reload fires its alert, stopping the policy server
// fires the fail-mode alert, and closing the broker's endpoint fires the broker-down alert.
// `promtool check config` and `check rules` must pass.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { auditHook, createLogger, startTelemetry, type Telemetry } from "../../broker/src/telemetry.js";
import { freePort, ROOT, type Stack, sleep, startStack, terminate } from "../e2e/harness.js";

const DEPLOY = join(ROOT, "deploy");
const RULES = join(DEPLOY, "prometheus/rules/agentsh-alerts.yml");
const HOST = "obs-host-1";

const POLICY = `
version: 1
name: observability
mode: enforce
default_action: deny
default_read_action: allow
file_rules:
  - name: workspace
    paths: ['\${WORKSPACE}\\**']
    operations: ['*']
    decision: allow
    cache_ttl: 30s
  - name: secrets
    paths: ['C:\\Users\\*\\.ssh\\**']
    operations: [read, write]
    decision: deny
    cache_ttl: 30s
  - name: agent-config
    paths: ['C:\\ProgramData\\agent\\**']
    operations: [read]
    decision: audit
  - name: documents
    paths: ['C:\\Users\\*\\Documents\\**']
    operations: [write]
    decision: approve
registry_rules:
  - name: run-keys
    paths: ['HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run*']
    operations: [write, create, delete, rename]
    decision: deny
    priority: 100
`;

interface PromResult {
  status: string;
  data: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
  error?: string;
}

let stack: Stack | undefined;
let telemetry: Telemetry | undefined;
let prom: ChildProcess | undefined;
let promUrl = "";
let tmp = "";
let running = true;
let workload: Promise<void> | undefined;
const audit: Array<Record<string, unknown>> = [];

const promtool = (...args: string[]) => spawnSync("promtool", args, { encoding: "utf8" });

async function query(expr: string): Promise<PromResult> {
  const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await r.json()) as PromResult;
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

async function firing(alertname: string): Promise<Record<string, string> | undefined> {
  const r = (await (await fetch(`${promUrl}/api/v1/alerts`)).json()) as {
    data: { alerts: Array<{ labels: Record<string, string>; state: string }> };
  };
  return r.data.alerts.find((a) => a.labels.alertname === alertname && a.state === "firing")?.labels;
}

/** A build-like mix: new object files (uncached), re-reads (cache hits), denials, audits, approvals. */
async function drive(s: Stack): Promise<void> {
  const ctl = s.sim.ctl;
  for (let i = 0; running; i++) {
    const ops: Promise<unknown>[] = [];
    for (let j = 0; j < 10; j++) {
      ops.push(ctl.file(700, "write", `C:\\work\\repo\\obj\\f${i}_${j}.o`));
      ops.push(ctl.file(700, "read", `C:\\work\\repo\\src\\main${j}.c`));
      ops.push(ctl.file(700, "read", "C:\\Windows\\System32\\kernel32.dll"));
    }
    ops.push(ctl.file(701, "read", `C:\\Users\\dev\\.ssh\\id_rsa${i % 50}`));
    ops.push(ctl.file(701, "read", "C:\\ProgramData\\agent\\settings.json"));
    ops.push(
      ctl.registry(701, "set_value", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run", {
        value: `x${i}`,
      }),
    );
    if (i % 20 === 0) ops.push(ctl.file(701, "write", `C:\\Users\\dev\\Documents\\report${i}.docx`));
    await Promise.all(ops);
    await sleep(50);
  }
}

beforeAll(async () => {
  const [brokerPort, serverPort, promPort] = [await freePort(), await freePort(), await freePort()];
  telemetry = await startTelemetry("agentsh-broker", {
    host: HOST,
    env: { OTEL_METRICS_EXPORTER: "prometheus", OTEL_EXPORTER_PROMETHEUS_PORT: String(brokerPort) },
  });
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split("\n")) if (line) audit.push(JSON.parse(line));
      cb();
    },
  });
  const logger = createLogger({ service: "agentsh-broker", destination: sink as never, otel: false });
  stack = await startStack({
    policy: POLICY,
    processes: true,
    serverEnv: () => ({
      OTEL_METRICS_EXPORTER: "prometheus",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(serverPort),
      OTEL_SERVICE_NAME: "agentsh-policy-server",
    }),
    env: { AGENTSH_HOST: HOST },
    hooks: { onDecision: auditHook(logger), onDriverDecision: auditHook(logger) },
  });
  stack.broker.registerSession({
    token: 70n,
    rootPid: 700,
    workspace: "C:\\work\\repo",
    userSid: "S-1-5-21-1-2-3-1001",
    userProfile: "C:\\Users\\dev",
    agent: "observability",
  });
  await stack.sim.ctl.spawn(701, 700);

  // Prometheus: the deploy rules with short `for:` so alerts fire within the test.
  tmp = join(stack.dir, "prometheus");
  mkdirSync(join(tmp, "data"), { recursive: true });
  const rules = parse(readFileSync(RULES, "utf8")) as { groups: Array<{ rules: Array<{ for?: string }> }> };
  for (const g of rules.groups) for (const r of g.rules) if (r.for) r.for = "1s";
  writeFileSync(join(tmp, "rules.yml"), stringify(rules));
  writeFileSync(
    join(tmp, "prometheus.yml"),
    stringify({
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: ["rules.yml"],
      scrape_configs: [
        { job_name: "agentsh-broker", static_configs: [{ targets: [`127.0.0.1:${brokerPort}`] }] },
        { job_name: "agentsh-policy-server", static_configs: [{ targets: [`127.0.0.1:${serverPort}`] }] },
      ],
    }),
  );
  promUrl = `http://127.0.0.1:${promPort}`;
  prom = spawn(
    "prometheus",
    [
      `--config.file=${join(tmp, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(tmp, "data")}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let promErr = "";
  prom.stderr!.on("data", (d) => {
    promErr += d;
  });
  await until(`prometheus ready (${promErr.slice(-300)})`, async () =>
    (await fetch(`${promUrl}/-/ready`)).ok ? true : undefined,
  );
  workload = drive(stack);
  // Both targets up, and enough samples for rates over 10 s windows.
  await until("both targets scraped", async () => {
    const r = await query(
      "count(up == 1) == 2 and count(count_over_time(agentsh_decisions_total[1m]) >= 5) > 0",
    );
    return r.data.result.length > 0 ? true : undefined;
  });
});

afterAll(async () => {
  running = false;
  await workload?.catch(() => {});
  if (prom) await terminate(prom);
  await stack?.stop();
  await telemetry?.shutdown();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Dashboard variables as Grafana would resolve them (the first value of each query variable). */
async function variables(dash: {
  templating: { list: Array<{ name: string; type: string; definition?: string }> };
}) {
  const out: Record<string, string> = { __rate_interval: "10s", __interval: "5s", __range: "1m" };
  for (const v of dash.templating.list) {
    if (v.type !== "query") continue;
    const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(v.definition ?? "");
    expect(m, `variable ${v.name}: ${v.definition}`).not.toBeNull();
    const r = (await (
      await fetch(`${promUrl}/api/v1/label/${m![2]}/values?match[]=${encodeURIComponent(m![1]!)}`)
    ).json()) as { data: string[] };
    expect(r.data.length, `variable ${v.name} has values`).toBeGreaterThan(0);
    out[v.name] = v.name === "host" ? HOST : r.data[0]!;
  }
  return out;
}

function substitute(expr: string, vars: Record<string, string>): string {
  return expr.replace(/\$\{?(\w+)\}?/g, (all, name: string) => vars[name] ?? all);
}

describe("observability against a real Prometheus", () => {
  it("promtool accepts the scrape configuration and the alert rules", () => {
    const c = promtool("check", "config", join(DEPLOY, "prometheus/prometheus.yml"));
    expect(c.status, c.stdout + c.stderr).toBe(0);
    const r = promtool("check", "rules", RULES);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: 7 rules found/);
  });

  it("every dashboard panel query returns data", async () => {
    const dir = join(DEPLOY, "grafana/dashboards");
    const files = readdirSync(dir).filter((f) => f.endsWith(".json"));
    expect(files.sort()).toEqual(["agentsh-fleet.json", "agentsh-host.json"]);
    const empty: string[] = [];
    let n = 0;
    for (const f of files) {
      const dash = JSON.parse(readFileSync(join(dir, f), "utf8"));
      const vars = await variables(dash);
      for (const p of dash.panels as Array<{ title: string; targets: Array<{ expr: string }> }>) {
        expect(p.targets.length, `${f}: ${p.title} has queries`).toBeGreaterThan(0);
        for (const t of p.targets) {
          const q = substitute(t.expr, vars);
          expect(q, `${f}: ${p.title}: variables left`).not.toMatch(/\$/);
          const r = await query(q);
          n++;
          if (r.status !== "success") empty.push(`${f}: ${p.title}: ${r.error}\n  ${q}`);
          else if (r.data.result.length === 0) empty.push(`${f}: ${p.title}: no data\n  ${q}`);
        }
      }
    }
    expect(empty, empty.join("\n")).toEqual([]);
    expect(n).toBeGreaterThan(40);
  });

  it("every alert expression returns data (its signal, without the threshold)", async () => {
    const rules = parse(readFileSync(RULES, "utf8")) as {
      groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
    };
    const bad: string[] = [];
    for (const r of rules.groups.flatMap((g) => g.rules)) {
      const signal = r.expr.trim().replace(/\s*(>=|<=|==|!=|>|<)\s*[0-9.]+\s*$/, "");
      expect(signal, `${r.alert} has a threshold`).not.toBe(r.expr.trim());
      const q = await query(signal);
      if (q.status !== "success" || q.data.result.length === 0)
        bad.push(`${r.alert}: ${q.error ?? "no data"}\n  ${signal}`);
    }
    expect(bad, bad.join("\n")).toEqual([]);
  });

  it("decisions are counted by source, with no path or session in any label", async () => {
    const r = await query('sum by (source) (agentsh_decisions_total{host_name="obs-host-1"})');
    const by = Object.fromEntries(r.data.result.map((x) => [x.metric.source, Number(x.value[1])]));
    expect(by.server).toBeGreaterThan(0);
    expect(by.driver_cache).toBeGreaterThan(0);
    const all = await query('{__name__=~"agentsh_.*|rpc_.*"}');
    for (const s of all.data.result)
      for (const [k, v] of Object.entries(s.metric)) {
        expect(v, `${s.metric.__name__} ${k}`).not.toMatch(/\\|\.ssh|^70$/);
      }
  });

  it("writes an audit record for every decision that is not a plain allowed server answer", async () => {
    const deny = audit.find((a) => a.rule === "secrets");
    expect(deny).toMatchObject({
      audit: true,
      msg: "decision",
      session: "70",
      pid: 701,
      kind: "file",
      operation: "read",
      decision: "deny",
      enforced: "deny",
      source: "server",
    });
    expect(deny?.path).toMatch(/\.ssh\\id_rsa/);
    expect(typeof deny?.policy_version).toBe("string");
    expect(typeof deny?.latency_ms).toBe("number");
    expect(audit.some((a) => a.decision === "audit" && a.enforced === "allow")).toBe(true);
    expect(audit.some((a) => a.rule === "run-keys" && a.kind === "registry")).toBe(true);
    expect(audit.every((a) => !(a.decision === "allow" && a.source === "server"))).toBe(true);
    // A denial the driver repeats from its cache has its own record, naming the rule it cached.
    const key = "C:\\Users\\dev\\.ssh\\known_hosts";
    await stack!.sim.ctl.file(701, "read", key);
    expect(await stack!.sim.ctl.file(701, "read", key)).toMatchObject({ source: "cache", reported: true });
    await expect
      .poll(() => audit.find((a) => a.source === "driver_cache" && a.path === key))
      .toMatchObject({ rule: "secrets", decision: "deny", enforced: "deny", pid: 701, session: "70" });
    // and the reports are counted for the host panel
    await until("driver decision reports scraped", async () => {
      const r = await query('sum(agentsh_driver_decision_reports_total{outcome="reported"})');
      return Number(r.data.result[0]?.value[1] ?? 0) > 0 ? true : undefined;
    });
    // The driver's own decisions are counted by kind, operation and decision too (GET_DECISION_COUNTS),
    // like the broker's: the denial it repeated is a driver_cache file read denied.
    await until("the driver's cached denial counted", async () => {
      const r = await query(
        'sum(agentsh_decisions_total{source="driver_cache",kind="file",operation="read",decision="deny"})',
      );
      return Number(r.data.result[0]?.value[1] ?? 0) > 0 ? true : undefined;
    });
    const driver = await query(
      'sum by (kind, operation, decision) (agentsh_decisions_total{source=~"driver_.*"})',
    );
    expect(driver.data.result.length).toBeGreaterThan(1);
    for (const x of driver.data.result) {
      expect(x.metric.kind).toMatch(/^(file|registry)$/);
      expect(x.metric.operation).toMatch(/^(create|read|write|delete|rename)$/);
      expect(x.metric.decision).toMatch(/^(allow|deny)$/);
    }
  });

  it("a refused policy reload fires AgentshPolicyReloadFailed", async () => {
    stack!.servers[0]!.reload("version: 1\nname: [broken\n");
    const labels = await until("AgentshPolicyReloadFailed firing", () => firing("AgentshPolicyReloadFailed"));
    expect(labels.service_instance_id).toMatch(/:\d+$/);
    stack!.servers[0]!.reload(POLICY);
  });

  it("losing the policy server fires AgentshHostInFailMode for the broker hop", async () => {
    stack!.servers[0]!.kill(); // SIGKILL: a crashed replica, no graceful drain
    const labels = await until("AgentshHostInFailMode firing", () => firing("AgentshHostInFailMode"));
    expect(labels).toMatchObject({ host_name: HOST, hop: "broker", severity: "critical" });
    const r = await query('sum(agentsh_decisions_total{source=~"fail_mode|stale"})');
    expect(Number(r.data.result[0]?.value[1])).toBeGreaterThan(0);
    expect(audit.some((a) => a.source === "fail_mode" && typeof a.reason === "string")).toBe(true);
  });

  it("a broker that stops answering scrapes fires AgentshBrokerDown", async () => {
    expect(await firing("AgentshBrokerDown")).toBeUndefined();
    // Its metrics endpoint closes, as when the broker service stops: its own fail-state series go.
    await telemetry!.shutdown();
    telemetry = undefined;
    const labels = await until("AgentshBrokerDown firing", () => firing("AgentshBrokerDown"));
    expect(labels).toMatchObject({ job: "agentsh-broker", severity: "critical" });
    expect(labels.instance).toMatch(/^127\.0\.0\.1:\d+$/);
  });
});
