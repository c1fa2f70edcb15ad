import { describe, expect, it } from "vitest";
import { lintPolicy, patternCovers } from "./policy-lint.js";

const head = "version: 1\nname: t\ndefault_action: deny\n";

describe("lint", () => {
  it("unknown keys with position and a hint", () => {
    const d = lintPolicy(
      `${head}file_rules:\n  - name: a\n    paths: ['C:\\\\x\\\\**']\n    operatons: [read]\n    decision: allow\n`,
      "p.yaml",
    );
    const unk = d.find((x) => x.code === "unknown_key")!;
    expect(unk).toMatchObject({ severity: "error", line: 7, column: 5, file: "p.yaml" });
    expect(unk.message).toMatch(/unknown key "operatons" \(did you mean "operations"\?\)/);
    expect(d.some((x) => /missing "operations"/.test(x.message))).toBe(true);
  });
  it("top-level unknown key, bad enum, bad duration, bad template", () => {
    const d = lintPolicy(
      `${head}mode: strict\nextra: 1\nfile_rules:\n  - name: a\n    paths: ['C:\\\\x']\n    operations: [read, erase]\n    decision: allow\n    cache_ttl: 10 years\n    message: '{{.Nope}}'\n`,
    );
    const msgs = d.map((x) => `${x.line}:${x.column} ${x.message}`);
    expect(msgs).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^4:7 mode must be one of enforce, monitor/),
        expect.stringMatching(/^5:1 policy: unknown key "extra"/),
        expect.stringMatching(/^9:24 .*operation must be one of/),
        expect.stringMatching(/^11:16 .*not a duration/),
        expect.stringMatching(/^12:14 .*unknown template field \.Nope/),
      ]),
    );
  });
  it("YAML syntax errors have positions", () => {
    const d = lintPolicy(`${head}file_rules:\n  - name: a\n   paths: [x\n`);
    expect(d[0]).toMatchObject({ severity: "error", code: "syntax" });
    expect(d[0]!.line).toBeGreaterThan(4);
  });
  it("duplicate keys and names", () => {
    const d = lintPolicy(`${head}name: again\n`);
    expect(d[0]).toMatchObject({ code: "syntax", line: 4 });
    const d2 = lintPolicy(
      `${head}file_rules:\n  - {name: a, paths: ['C:\\\\x'], operations: [read], decision: allow}\n  - {name: a, paths: ['C:\\\\y'], operations: [read], decision: allow}\n`,
    );
    expect(d2[0]!.message).toMatch(/already used at line 5/);
  });
  it("shadowed rules", () => {
    const d = lintPolicy(`${head}file_rules:
  - {name: all, paths: ['C:\\\\Users\\\\**'], operations: ['*'], decision: allow}
  - {name: ssh, paths: ['C:\\\\Users\\\\*\\\\.ssh\\\\**'], operations: [read], decision: deny}
  - {name: partly, paths: ['C:\\\\Users\\\\x', 'D:\\\\x'], operations: [read], decision: deny}
  - {name: ws, paths: ['\${WORKSPACE}\\\\**'], operations: [read], decision: allow}
  - {name: any, paths: ['**'], operations: [read], decision: deny}
  - {name: after-any, paths: ['\${WORKSPACE}\\\\x'], operations: [read], decision: deny}
  - {name: late-allow, paths: ['C:\\\\Users\\\\x\\\\y'], operations: [read], decision: allow}
registry_rules:
  - {name: low, paths: ['HKLM\\\\SOFTWARE\\\\X\\\\k'], operations: [write], decision: deny}
  - {name: high, paths: ['HKLM\\\\SOFTWARE\\\\X\\\\*'], operations: [write], decision: allow, priority: 5}
`);
    const sh = d.filter((x) => x.code === "shadowed").map((x) => x.message);
    // A later rule stricter than the one that wins can still decide a path with 8.3 short names.
    const shortNames =
      /\(it can still decide a path with 8\.3 short names, which gets the stricter answer\)$/;
    expect(sh).toEqual([
      expect.stringMatching(
        /rule "ssh" can never match a path written in full: earlier rule "all" \(line 5\)/,
      ),
      expect.stringMatching(/rule "after-any" can never match a path written in full: earlier rule "ws"/),
      'rule "late-allow" can never match: earlier rule "all" (line 5) always wins',
      expect.stringMatching(/rule "low" can never match: earlier rule "high".*\(priority, then order\)$/),
    ]);
    expect(sh.map((m) => shortNames.test(m))).toEqual([true, true, false, false]);
  });
  it("an allow on WOW6432Node also allows the 64-bit keys: said", () => {
    const d = lintPolicy(`${head}registry_rules:
  - {name: w, paths: ['HKLM\\\\SOFTWARE\\\\WOW6432Node\\\\**'], operations: [write], decision: allow}
  - {name: d, paths: ['HKLM\\\\SOFTWARE\\\\Wow6432Node\\\\X'], operations: [write], decision: deny}
`);
    expect(d.map((x) => x.message)).toEqual([
      'rule "w": pattern "HKLM\\\\SOFTWARE\\\\WOW6432Node\\\\**": WOW6432Node names the same keys as the 64-bit view here, so this rule also allows "HKLM\\\\SOFTWARE\\\\**"',
      expect.stringMatching(/rule "d" can never match/),
    ]);
  });
  it("ineffective settings", () => {
    const d = lintPolicy(`${head}file_rules:
  - {name: a, paths: ['C:\\\\PROGRA~1\\\\x'], operations: [read], decision: allow, timeout: 1m}
  - {name: b, paths: ['C:\\\\y'], operations: [read], decision: approve, cache_ttl: 1m}
`);
    expect(d.map((x) => x.message)).toEqual([
      expect.stringMatching(/8\.3 short name/),
      expect.stringMatching(/timeout only applies/),
      expect.stringMatching(/never cached/),
    ]);
    expect(d.every((x) => x.severity === "warning")).toBe(true);
  });
  it("patternCovers", () => {
    expect(patternCovers(["C:", "**"], ["C:", "A", "*.TXT"])).toBe(true);
    expect(patternCovers(["C:", "*"], ["C:", "A", "B"])).toBe(false);
    expect(patternCovers(["**", "*.PEM"], ["C:", "**", "*.PEM"])).toBe(true);
    expect(patternCovers(["C:", "A*"], ["C:", "AB*"])).toBe(true);
    expect(patternCovers(["C:", "AB*"], ["C:", "A*"])).toBe(false);
    expect(patternCovers(["C:", "A", "**"], ["C:", "**"])).toBe(false);
  });
});
