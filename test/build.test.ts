// `npm run build` makes the broker bundle a Windows service runs; it must start without tsx.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./e2e/harness.js";

describe("the broker bundle (npm run build)", () => {
  it("builds and runs without tsx", () => {
    const b = spawnSync(process.execPath, [join(ROOT, "broker/build.mjs")], { encoding: "utf8" });
    expect(b.status, b.stderr).toBe(0);
    const bundle = join(ROOT, "broker/dist/agentsh-broker.mjs");
    const help = spawnSync(
      process.execPath,
      ["--max-semi-space-size=1", "--v8-pool-size=1", bundle, "--help"],
      { encoding: "utf8" },
    );
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain("agentsh-broker <command>");
    const cfg = spawnSync(process.execPath, [bundle, "config", "check"], {
      encoding: "utf8",
      env: { ...process.env, AGENTSH_DRIVER_TIMEOUT_MS: "50" },
    });
    expect(cfg.status).toBe(2);
    expect(cfg.stderr).toMatch(/driver\.timeout_ms must be within 100\.\.60000, got 50/);
  });
});
