import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, driverConfigOf, envName, KEYS, loadConfig } from "./config.js";

const dir = mkdtempSync(join(tmpdir(), "agentsh-config-"));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const problems = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error("no error");
};

describe("broker config", () => {
  it("has a default for everything and derives a budget shorter than the driver timeout", () => {
    const c = loadConfig(undefined, {});
    expect(c.driver.timeoutMs).toBe(5000);
    expect(c.server.budgetMs).toBe(4500);
    expect(c.server.failMode).toBe("closed");
    expect(c.driver.failMode).toBe("open");
    expect(driverConfigOf(c)).toMatchObject({
      failMode: 0,
      policyQueryTimeoutMs: 5000,
      cacheMaxEntries: 4096,
      // the driver reports the decisions it makes alone (DECISION_EVENTS); registry outcomes only
      // when asked for
      flags: 2,
    });
    expect(driverConfigOf(loadConfig(undefined, { AGENTSH_DRIVER_AUDIT_RESULTS: "true" })).flags).toBe(3);
    expect(driverConfigOf(loadConfig(undefined, { AGENTSH_DRIVER_DECISION_EVENTS: "false" })).flags).toBe(0);
    expect(() => loadConfig(undefined, { AGENTSH_DRIVER_AUDIT_RESULTS: "maybe" })).toThrow(
      /driver\.audit_results.*must be true or false/s,
    );
  });

  it("reads YAML and lets the environment win", () => {
    const p = file(
      "a.yaml",
      "server:\n  addresses: [10.0.0.1:7443, 10.0.0.2:7443]\n  fail_mode: open\ndriver:\n  timeout_ms: 1000\n",
    );
    const c = loadConfig(p, { AGENTSH_SERVER_FAIL_MODE: "closed", AGENTSH_DRIVER_READERS: "8" });
    expect(c.server.addresses).toEqual(["10.0.0.1:7443", "10.0.0.2:7443"]);
    expect(c.server.failMode).toBe("closed");
    expect(c.driver.readers).toBe(8);
    expect(c.server.budgetMs).toBe(900);
  });

  it("names the key, the value and the place of every problem", () => {
    const p = file(
      "b.yaml",
      "server:\n  fail_mode: sometimes\n  streams: 0\ndriver:\n  timeout_ms: 99\n  colour: blue\n",
    );
    const ps = problems(() => loadConfig(p, { AGENTSH_DRIVER_READERS: "many" }));
    expect(ps).toContainEqual(
      expect.stringMatching(
        /b\.yaml:2:\d+: server\.fail_mode must be one of open \| closed, got "sometimes"/,
      ),
    );
    expect(ps).toContainEqual(expect.stringMatching(/server\.streams must be within 1\.\.64, got 0/));
    expect(ps).toContainEqual(
      expect.stringMatching(/driver\.timeout_ms must be within 100\.\.60000, got 99/),
    );
    expect(ps).toContainEqual(expect.stringMatching(/b\.yaml:6:\d+: unknown key "driver\.colour"/));
    expect(ps).toContainEqual(
      expect.stringMatching(/environment AGENTSH_DRIVER_READERS: driver\.readers must be an integer/),
    );
  });

  it("refuses a budget that is not shorter than the driver's timeout", () => {
    expect(problems(() => loadConfig(undefined, { AGENTSH_SERVER_BUDGET_MS: "5000" }))).toContainEqual(
      expect.stringMatching(/budget_ms \(5000\) must be shorter than driver\.timeout_ms \(5000\)/),
    );
  });

  it("reports YAML syntax errors with line and column, and unreadable files", () => {
    expect(problems(() => loadConfig(file("c.yaml", "server: [\n"), {}))[0]).toMatch(/c\.yaml:\d+:\d+/);
    expect(problems(() => loadConfig(join(dir, "missing.yaml"), {}))[0]).toMatch(/cannot read/);
  });

  it("numbers are decimal; a blank variable is unset", () => {
    for (const v of ["0x3e8", "0b101", "0o10", "2e4", "1_000"])
      expect(problems(() => loadConfig(undefined, { AGENTSH_DRIVER_TIMEOUT_MS: v }))).toEqual([
        `environment AGENTSH_DRIVER_TIMEOUT_MS: driver.timeout_ms must be an integer, got "${v}"`,
      ]);
    expect(loadConfig(undefined, { AGENTSH_SERVER_BUDGET_MS: "  " }).server.budgetMs).toBe(4500);
    expect(problems(() => loadConfig(file("n.yaml", 'server:\n  budget_ms: ""\n'), {}))[0]).toMatch(
      /server\.budget_ms must be an integer, got ""/,
    );
  });

  it("server addresses: host:port with a real port, IPv6 in brackets, one kind of list, none twice", () => {
    const bad: [string, RegExp][] = [
      ["127.0.0.1", /"127\.0\.0\.1" must be host:port/],
      ["127.0.0.1:0", /port 0 is not within 1\.\.65535/],
      ["127.0.0.1:70000", /port 70000 is not within/],
      ["::1:7443", /an IPv6 address needs brackets/],
      ["10.0.0.1:7443,10.0.0.1:7443", /"10\.0\.0\.1:7443" is listed twice/],
      ["a.example:7443,b.example:7443", /all IPv4 or all IPv6/],
    ];
    for (const [v, why] of bad) {
      const ps = problems(() => loadConfig(undefined, { AGENTSH_SERVER_ADDRESSES: v }));
      expect(ps, v).toEqual([expect.stringMatching(why)]);
      expect(ps[0]).toMatch(/^environment AGENTSH_SERVER_ADDRESSES: server\.addresses /);
    }
    expect(problems(() => loadConfig(file("s.yaml", "server:\n  addresses: [a:1, null]\n"), {}))[0]).toMatch(
      /server\.addresses must be a list of strings/,
    );
    for (const v of [
      "[::1]:7443",
      "dns:///policy.example:7443",
      "10.0.0.1:1,10.0.0.2:65535",
      "[::1]:1,[::2]:2",
    ])
      expect(loadConfig(undefined, { AGENTSH_SERVER_ADDRESSES: v }).server.addresses.join(","), v).toBe(v);
  });

  it("a variable named like a setting that is none is refused, with the nearest one", () => {
    expect(problems(() => loadConfig(undefined, { AGENTSH_SERVER_ADDRESS: "10.0.0.1:7443" }))).toEqual([
      "environment AGENTSH_SERVER_ADDRESS: not a broker setting (did you mean AGENTSH_SERVER_ADDRESSES?)",
    ]);
    // other components' variables are theirs
    expect(loadConfig(undefined, { AGENTSH_SIM_SOCKET: "/x", AGENTSH_POLICY_FILE: "/y" }).host).not.toBe("");
  });

  it("api.socket is a path, not a port", () => {
    expect(problems(() => loadConfig(undefined, { AGENTSH_API_SOCKET: "17443" }))).toEqual([
      "environment AGENTSH_API_SOCKET: api.socket must be a socket path or pipe name, not a port (17443)",
    ]);
    expect(problems(() => loadConfig(file("k.yaml", 'api:\n  socket: " "\n'), {}))[0]).toMatch(
      /api\.socket must be a socket path or pipe name/,
    );
  });

  it("every key has an environment name", () => {
    for (const k of KEYS) expect(envName(k.path)).toMatch(/^AGENTSH_[A-Z_]+$/);
  });
});
