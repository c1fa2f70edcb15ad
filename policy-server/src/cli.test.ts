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
  it("test: an inline policy's errors at the test file's lines; bad test files named by field", () => {
    const write = (name: string, text: string) => {
      const f = join(dir, name);
      writeFileSync(f, text);
      return f;
    };
    const inline = write(
      "inline.test.yaml",
      "policy:\n  version: 1\n  name: x\n  file_rules:\n    - name: a\n      paths: ['C:\\x']\n      operations: [wirte]\n      decision: allow\ncases:\n  - {operation: read, path: 'C:\\x', expect: allow}\n",
    );
    const r = run(["test", inline]);
    expect(r.code).toBe(2);
    expect(r.out).toContain(`${inline}:7:20: error: rule "a": operation must be one of`);
    const policy = `policy: ${JSON.stringify(DEFAULT)}\n`;
    const ok = "{operation: read, path: 'C:\\x', expect: allow}";
    for (const [name, text, want] of [
      ["list.test.yaml", "- a\n- b\n", "test file must be a mapping"],
      ["session.test.yaml", `${policy}session: 5\ncases: [${ok}]\n`, "session: must be an object"],
      ["sid.test.yaml", `${policy}user_sid: 5\ncases: [${ok}]\n`, "user_sid: must be a SID"],
    ] as const) {
      const t = run(["test", write(name, text)]);
      expect(t.code, name).toBe(2);
      expect(t.out, name).toContain(`ERROR ${join(dir, name)}: ${want}`);
    }
    const c = run(["test", write("case.test.yaml", `${policy}cases: [42, ${ok}]\n`)]);
    expect(c.code).toBe(1);
    expect(c.out).toMatch(/FAIL .*: case 1\n\s+cases\[0\]: must be a mapping, got 42\nPASS .*: case 2/);
  });

  it("lint: errors exit 1, shadowed rules are warnings", () => {
    const p = join(dir, "l.yaml");
    writeFileSync(
      p,
      "version: 1\nname: l\nfile_rules:\n  - {name: a, paths: ['C:\\**'], operations: ['*'], decision: allow}\n  - {name: b, paths: ['C:\\x'], operations: [read], decision: deny}\n",
    );
    const r = run(["lint", p]);
    expect(r.code).toBe(0);
    // b denies where a allows: a short-name path (C:\X~1) still gets b's stricter answer.
    expect(r.out).toMatch(
      /l\.yaml:5:5: warning: rule "b" can never match a path written in full: earlier rule "a" \(line 4\) always wins \(it can still decide a path with 8\.3 short names/,
    );
    expect(run(["lint", join(dir, "missing.yaml")]).code).toBe(1);
  });
  it("--help", () => {
    const r = run(["serve", "--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/AGENTSH_POLICY_ADDR/);
    for (const cmd of ["check", "test", "lint"]) {
      const h = run([cmd, "--help"]);
      expect(h.code, cmd).toBe(0);
      expect(h.out, cmd).toMatch(/agentsh-policy check --policy FILE/);
    }
  });

  it("check: --user-sid stands for a missing session SID in USERSID and {{.UserSid}} templates too", () => {
    const p = join(dir, "sid.yaml");
    writeFileSync(
      p,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the policy's own ${USERSID} variable
      "version: 1\nname: sid\ndefault_action: deny\nregistry_rules:\n  - name: app\n    paths: ['HKU\\${USERSID}\\Software\\App\\**']\n    operations: [write]\n    decision: allow\n    message: 'sid={{.UserSid}}'\n",
    );
    const line = JSON.stringify({ kind: "registry", operation: "write", path: "HKCU\\Software\\App\\x" });
    const r = run(["check", "--policy", p, "--user-sid", "S-1-5-21-1-2-3-1001"], `${line}\n`);
    expect(JSON.parse(r.out)).toMatchObject({
      decision: "allow",
      rule: "app",
      message: "sid=S-1-5-21-1-2-3-1001",
    });
  });

  it("check: lines end at \\n only; CRLF, a byte order mark, bad UTF-8 and a last line without \\n", () => {
    const read = (path: string) => JSON.stringify({ kind: "file", operation: "read", path });
    const input = Buffer.concat([
      Buffer.from(`\ufeff${read("C:\\a")}\r\n`),
      Buffer.from('{"kind":"file",\r"operation":"read","path":"C:\\\\b"}\n'), // a bare CR is JSON whitespace
      Buffer.from('{"kind":"file","operation":"read","path":"C:\\\\'),
      Buffer.from([0xff]),
      Buffer.from('"}\n'),
      Buffer.from(read("C:\\d")),
    ]);
    const r = spawnSync(process.execPath, [BIN, "check", "--policy", DEFAULT], { input, encoding: "utf8" });
    const out = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(out.map((o) => o.canonical_path ?? o.error)).toEqual([
      "C:\\a",
      "C:\\b",
      "line 3 is not valid UTF-8",
      "C:\\d",
    ]);
    expect(r.status).toBe(0);
  });

  it("check: a reader that goes away ends the run quietly", () => {
    const many = join(dir, "many.jsonl");
    writeFileSync(
      many,
      `${JSON.stringify({ kind: "file", operation: "read", path: "C:\\a" })}\n`.repeat(100000),
    );
    const r = spawnSync(
      "bash",
      [
        "-c",
        `set -o pipefail; "${process.execPath}" "${BIN}" check --policy "${DEFAULT}" < "${many}" | head -1`,
      ],
      { encoding: "utf8" },
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).decision).toBe("allow");
  });

  it("bad flags and files are named: twice, a directory, conflicting volume maps", () => {
    const twice = run(["check", "--policy", DEFAULT, "--policy", DEFAULT], "");
    expect(twice.code).toBe(2);
    expect(twice.err).toMatch(/--policy given twice/);
    const isDir = run(["check", "--policy", dir], "");
    expect(isDir.code).toBe(2);
    expect(isDir.err).toContain(`cannot read ${dir}: it is a directory`);
    const conflict = run(
      [
        "check",
        "--policy",
        DEFAULT,
        "--volume-map",
        "C:=\\Device\\HarddiskVolume3",
        "--volume-map",
        "D:=\\Device\\HarddiskVolume3",
      ],
      "",
    );
    expect(conflict.code).toBe(2);
    expect(conflict.err).toMatch(/\\Device\\HarddiskVolume3 is mapped to both C: and D:/);
  });

  it("lint: --volume-map, as check and serve take it", () => {
    const p = join(dir, "dev.yaml");
    writeFileSync(
      p,
      "version: 1\nname: dev\nfile_rules:\n  - {name: s, paths: ['\\Device\\HarddiskVolume3\\secret\\**'], operations: ['*'], decision: deny}\n",
    );
    expect(run(["lint", p]).out).toMatch(/not in the volume map/);
    const r = run(["lint", p, "--volume-map", "C:=\\Device\\HarddiskVolume3"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/dev\.yaml: ok/);
  });
});
