// `npm start` is the main job: it must run, exit 0, and show the summary; the outage scenario must
// show decisions by fail mode or stale while the server is down, and server decisions again after.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./e2e/harness.js";

function demo(args: string[]) {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "broker/src/demo/main.ts"), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const count = (out: string, label: string) =>
  Number(new RegExp(`^\\s+${label}\\s+(\\d+)`, "m").exec(out)?.[1] ?? Number.NaN);

describe("the demo (npm start)", () => {
  it("runs the workload and prints the summary", () => {
    const { code, out, err } = demo(["--seconds", "4"]);
    expect(code, err).toBe(0);
    for (const section of [
      "decisions/s",
      "cache hit ratio",
      "latency cached",
      "latency uncached",
      "decisions by source",
      "top denying rules",
    ]) {
      expect(out).toContain(section);
    }
    expect(count(out, "server")).toBeGreaterThan(0);
    expect(count(out, "driver cache")).toBeGreaterThan(0);
    expect(out).toMatch(/credentials|system32-writes|block-run-keys/);
  });

  it("server-outage: fail mode and stale answers while the server is down, then recovery", () => {
    const { code, out, err } = demo(["--seconds", "6", "--scenario", "server-outage", "--rate", "300"]);
    expect(code, err).toBe(0);
    expect(out).toContain("SCENARIO: policy server stopped");
    expect(out).toContain("SCENARIO: policy server started again");
    expect(count(out, "fail mode \\(broker\\)") + count(out, "stale")).toBeGreaterThan(0);
    // The per-second timeline ends with the server deciding again.
    const rows = out.split("decisions by source, per second")[1]!.trim().split("\n");
    const last = rows.slice(-2).map((r) => Number(/server\s+(\d+)/.exec(r)?.[1] ?? 0));
    expect(Math.max(...last)).toBeGreaterThan(0);
  });

  it("refuses bad arguments with a clear message", () => {
    const { code, err } = demo(["--scenario", "meteor"]);
    expect(code).toBe(1);
    expect(err).toMatch(/unknown --scenario meteor/);
  });
});
