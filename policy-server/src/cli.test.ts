import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../bin/agentsh-policy.mjs", import.meta.url));
const DEFAULT = fileURLToPath(new URL("../policies/default.yaml", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "agentsh-cli-"));

function run(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], { input, encoding: "utf8", timeout: 30000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("agentsh-policy CLI", () => {
  it("check: one JSON line out per line in, errors in-band", () => {
    const lines = [
      JSON.stringify({
        kind: "file",
        operation: "write",
        path: "\\Device\\HarddiskVolume3\\w\\x",
        session: { workspace: "C:\\w" },
      }),
      "{oops",
      JSON.stringify({
        kind: "registry",
        operation: "write",
        path: "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
      }),
      JSON.stringify({ kind: "file", operation: "rename", path: "C:\\w\\a" }),
    ];
    const r = run(
      [
        "check",
        "--policy",
        DEFAULT,
        "--volume-map",
        "C:=\\Device\\HarddiskVolume3",
        "--user-sid",
        "S-1-5-21-1-2-3-4",
      ],
      `${lines.join("\n")}\n`,
    );
    expect(r.code).toBe(0);
    const out = r.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(out).toHaveLength(4);
    expect(out[0]).toMatchObject({
      decision: "allow",
      rule: "workspace",
      cache_ttl_ms: 30000,
      canonical_path: "C:\\w\\x",
    });
    expect(out[1].error).toMatch(/malformed JSON/);
    expect(out[2]).toMatchObject({ decision: "deny", rule: "block-run-keys", mitre: "T1547.001" });
    expect(out[3].error).toMatch(/rename_dest/);
  });
  it("check: exit 2 with line and column when the policy cannot load", () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(
      bad,
      "version: 1\nname: x\nfile_rules:\n  - name: a\n    paths: ['C:\\x']\n    operations: [read]\n    decison: allow\n",
    );
    const r = run(["check", "--policy", bad], "");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/bad\.yaml:7:5: error: .*unknown key "decison" \(did you mean "decision"\?\)/);
  });
  it("test: pass and fail", () => {
    const t = join(dir, "t.test.yaml");
    writeFileSync(
      t,
      `policy: ${JSON.stringify(DEFAULT)}\nsession: {workspace: 'C:\\w'}\ncases:\n  - {name: ok, operation: write, path: 'C:\\w\\a', expect: allow}\n  - {name: wrong, operation: write, path: 'C:\\x', expect: {decision: allow}}\n`,
    );
    const r = run(["test", t]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/PASS .*: ok/);
    expect(r.out).toMatch(/FAIL .*: wrong\n\s+decision: want "allow", got "deny"/);
    expect(run(["test", fileURLToPath(new URL("../policies/default.test.yaml", import.meta.url))]).code).toBe(
      0,
    );
  });
  it("lint: errors exit 1, shadowed rules are warnings", () => {
    const p = join(dir, "l.yaml");
    writeFileSync(
      p,
      "version: 1\nname: l\nfile_rules:\n  - {name: a, paths: ['C:\\**'], operations: ['*'], decision: allow}\n  - {name: b, paths: ['C:\\x'], operations: [read], decision: deny}\n",
    );
    const r = run(["lint", p]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /l\.yaml:5:5: warning: rule "b" can never match: earlier rule "a" \(line 4\) always wins/,
    );
    expect(run(["lint", join(dir, "missing.yaml")]).code).toBe(1);
  });
  it("--help", () => {
    const r = run(["serve", "--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/AGENTSH_POLICY_ADDR/);
  });
});
