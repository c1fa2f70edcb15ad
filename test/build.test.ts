// `npm run build` makes the bundles the services are deployed as (a Windows service runs the
// broker's, the fleet runs the policy server's); they must start without tsx.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BROKER_BUNDLE, BROKER_NODE_FLAGS, POLICY_BUNDLE } from "../broker/bench/bench-procs.js";
import { ROOT } from "./e2e/harness.js";

const run = (args: string[], env: Record<string, string> = {}, input?: string) =>
  spawnSync(process.execPath, args, { encoding: "utf8", env: { ...process.env, ...env }, input });

describe("the service bundles (npm run build)", () => {
  it("builds both, and each runs without tsx", () => {
    const b = run([join(ROOT, "build.mjs")]);
    expect(b.status, b.stderr).toBe(0);
    expect(b.stdout).toContain("agentsh-broker.mjs");
    expect(b.stdout).toContain("agentsh-policy.mjs");

    const help = run([...BROKER_NODE_FLAGS, BROKER_BUNDLE, "--help"]);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain("agentsh-broker <command>");
    const cfg = run([BROKER_BUNDLE, "config", "check"], { AGENTSH_DRIVER_TIMEOUT_MS: "50" });
    expect(cfg.status).toBe(2);
    expect(cfg.stderr).toMatch(/driver\.timeout_ms must be within 100\.\.60000, got 50/);

    // The policy server's bundle decides like the sources: a credential read is denied by the
    // sample policy's rule, and a broken request line gets an error without stopping the rest.
    const lines = [
      JSON.stringify({
        kind: "file",
        operation: "read",
        path: "C:\\Users\\dev\\.ssh\\id_rsa",
        session: { workspace: "C:\\w", user_profile: "C:\\Users\\dev" },
      }),
      "{not json",
    ].join("\n");
    const check = run(
      [POLICY_BUNDLE, "check", "--policy", join(ROOT, "policy-server/policies/default.yaml")],
      {},
      `${lines}\n`,
    );
    expect(check.status, check.stderr).toBe(0);
    const out = check.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(out).toHaveLength(2);
    expect(out[0]).toMatchObject({ decision: "deny", rule: "credentials" });
    expect(out[1].error).toMatch(/malformed JSON/);
  });
});
