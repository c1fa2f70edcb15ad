import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { PolicyEngine } from "./engine.js";
import type { CheckInput } from "./engine-types.js";
import { VolumeMap } from "./path-volumes.js";
import { PolicyError } from "./policy-error.js";

const SID = "S-1-5-21-1-2-3-1001";
const session = { workspace: "C:\\work\\repo", userSid: SID, userProfile: "C:\\Users\\dev" };
const volumes = new VolumeMap([["\\Device\\HarddiskVolume3", "C:"]]);
const defaultPolicy = readFileSync(new URL("../policies/default.yaml", import.meta.url), "utf8");
const engine = PolicyEngine.fromText(defaultPolicy, { file: "default.yaml", volumes });

function check(e: PolicyEngine, input: Partial<CheckInput> & { path: string }) {
  return e.decide({ kind: "file", operation: "write", session, ...input } as CheckInput);
}

describe("default policy", () => {
  it("workspace allowed, every path form", () => {
    for (const p of [
      "C:\\work\\repo\\a.ts",
      "\\Device\\HarddiskVolume3\\work\\repo\\a.ts",
      "\\\\?\\c:\\WORK\\repo\\.\\a.ts",
    ]) {
      const d = check(engine, { path: p });
      expect(d).toMatchObject({
        decision: "allow",
        rule: "workspace",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: policy variable syntax
        pattern: "${WORKSPACE}\\**",
        cacheTtlMs: 30000,
      });
      expect(d.policyVersion).toMatch(/^0-[0-9a-f]{12}$/);
    }
  });
  it("workspace root itself is covered by \\**", () => {
    expect(check(engine, { path: "C:\\work\\repo", operation: "delete" }).rule).toBe("workspace");
  });
  it("credentials denied with rendered message", () => {
    const d = check(engine, { path: "C:\\Users\\dev\\.ssh\\id_rsa", operation: "read" });
    expect(d).toMatchObject({
      decision: "deny",
      rule: "credentials",
      cacheTtlMs: 60000,
      message: "agent may not touch credentials: C:\\Users\\dev\\.ssh\\id_rsa",
    });
  });
  it("workspace inside the profile does not unlock .ssh", () => {
    const s = { ...session, workspace: "C:\\Users\\dev" };
    // first match: workspace allows (rule order is the author's choice) ...
    expect(check(engine, { path: "C:\\Users\\dev\\.ssh\\id_rsa", session: s }).rule).toBe("workspace");
  });
  it("default read allow, default write deny", () => {
    expect(check(engine, { path: "C:\\data\\x", operation: "read" })).toMatchObject({
      decision: "allow",
      rule: "default_read",
      cacheTtlMs: 5000,
    });
    expect(check(engine, { path: "C:\\data\\x" })).toMatchObject({
      decision: "deny",
      rule: "default",
      cacheTtlMs: 60000,
    });
  });
  it("audit has TTL 0", () => {
    expect(check(engine, { path: "C:\\Users\\dev\\AppData\\Local\\Temp\\x" })).toMatchObject({
      decision: "audit",
      cacheTtlMs: 0,
    });
  });
  it("System32 writes denied, through Sysnative and .. too", () => {
    for (const p of [
      "C:\\Windows\\System32\\x.dll",
      "C:\\Windows\\Sysnative\\x.dll",
      "C:\\work\\repo\\..\\..\\Windows\\system32\\x.dll",
    ]) {
      expect(check(engine, { path: p }).rule).toBe("system32-writes");
    }
  });
  it("invalid paths denied with the reason", () => {
    const d = check(engine, { path: "C:\\work\\repo\\..\\..\\..\\x", operation: "read" });
    expect(d).toMatchObject({
      decision: "deny",
      rule: "builtin:invalid-path",
      reason: "'..' climbs above the root",
    });
  });
  it("registry: Run keys denied (priority), services approve with timeout and notify", () => {
    const run = engine.decide({
      kind: "registry",
      operation: "write",
      path: `\\REGISTRY\\USER\\${SID}\\Software\\Microsoft\\Windows\\CurrentVersion\\Run`,
      valueName: "evil",
      session,
    });
    expect(run).toMatchObject({ decision: "deny", rule: "block-run-keys", mitre: "T1547.001", notify: true });
    expect(run.message).toContain(" evil");
    const svc = engine.decide({
      kind: "registry",
      operation: "create",
      path: "\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\evil\\Parameters",
      session,
    });
    expect(svc).toMatchObject({
      decision: "approve",
      rule: "approve-service-changes",
      mitre: "T1543.003",
      cacheTtlMs: 0,
      approvalTimeoutMs: 120000,
      notify: true,
      message: "Agent wants to modify service: HKLM\\SYSTEM\\CurrentControlSet\\Services\\evil\\Parameters",
    });
  });
});

const base = `
version: 1
name: t
default_action: allow
default_read_action: allow
`;

describe("high-risk locations", () => {
  const e = PolicyEngine.fromText(`${base}
registry_rules:
  - name: allow-ifeo-reads
    paths: ['HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Image File Execution Options\\**']
    operations: [read]
    decision: allow
  - name: installer
    paths: ['HKLM\\SOFTWARE\\Microsoft\\Active Setup\\**']
    operations: [write]
    decision: allow
    allow_high_risk: true
  - name: approve-tasks
    paths: ['HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Schedule\\TaskCache\\Tasks\\**']
    operations: [write]
    decision: approve
  - name: audit-winlogon
    paths: ['HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon']
    operations: [write]
    decision: audit
`);
  const reg = (operation: CheckInput["operation"], path: string) =>
    e.decide({ kind: "registry", operation, path, session });
  const table: [string, string][] = [
    ["HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run", "T1547.001"],
    ["HKLM\\SOFTWARE\\Wow6432Node\\Microsoft\\Windows\\CurrentVersion\\RunOnce", "T1547.001"],
    ["HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\RunOnceEx\\0001", "T1547.001"],
    ["HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon", "T1547.004"],
    ["\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\x", "T1543.003"],
    [
      "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Image File Execution Options\\sethc.exe",
      "T1546.012",
    ],
    ["HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows Defender\\Exclusions", "T1562.001"],
    ["HKLM\\SYSTEM\\CurrentControlSet\\Control\\Lsa", "T1003"],
    ["HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager\\KnownDLLs", "T1574.001"],
    ["HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Windows", "T1546.010"],
    ["HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Schedule\\TaskCache\\Tree\\x", "T1053.005"],
    ["HKCU\\Software\\Classes\\CLSID\\{x}\\InprocServer32", "T1546.015"],
    ["HKCR\\CLSID\\{x}\\InprocServer32", "T1546.015"],
    ["HKLM\\SYSTEM\\CurrentControlSet\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\x", "T1562.004"],
    ["HKLM\\SECURITY\\Policy\\Secrets", "T1003.004"],
    ["HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server", "T1021.001"],
    ["HKCU\\Software\\Classes\\ms-settings\\shell\\open\\command", "T1548.002"],
  ];
  for (const [path, mitre] of table) {
    it(`${path} -> ${mitre}`, () => {
      for (const op of ["write", "create", "delete"] as const) {
        expect(reg(op, path)).toMatchObject({
          decision: "deny",
          rule: "builtin:high-risk",
          mitre,
          cacheTtlMs: 60000,
        });
      }
      expect(reg("read", path)).toMatchObject({ mitre });
    });
  }
  it("reads are not escalated but carry the technique", () => {
    expect(
      reg("read", "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Image File Execution Options\\x"),
    ).toMatchObject({
      decision: "allow",
      rule: "allow-ifeo-reads",
      mitre: "T1546.012",
    });
  });
  it("allow_high_risk lets the rule decide", () => {
    expect(reg("write", "HKLM\\SOFTWARE\\Microsoft\\Active Setup\\Installed Components\\x")).toMatchObject({
      decision: "allow",
      rule: "installer",
      mitre: "T1547.014",
    });
  });
  it("approve stays approve, audit is escalated", () => {
    expect(
      reg("write", "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Schedule\\TaskCache\\Tasks\\x"),
    ).toMatchObject({
      decision: "approve",
      mitre: "T1053.005",
    });
    expect(reg("write", "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon")).toMatchObject({
      decision: "deny",
      rule: "builtin:high-risk",
    });
  });
  it("neighbours are not high-risk", () => {
    expect(reg("write", "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\x")).toMatchObject({
      decision: "allow",
      mitre: "",
    });
  });
  it("file high-risk: Startup folder", () => {
    expect(
      check(e, {
        path: "C:\\Users\\dev\\AppData\\Roaming\\Microsoft\\Windows\\Start Menu\\Programs\\Startup\\x.lnk",
      }),
    ).toMatchObject({ decision: "deny", mitre: "T1547.001" });
  });
  // Every built-in file location, in the forms the kernel and people use, and its neighbours.
  const fileTable: [string, string][] = [
    [
      "C:\\Users\\dev\\AppData\\Roaming\\Microsoft\\Windows\\Start Menu\\Programs\\Startup\\x.lnk",
      "T1547.001",
    ],
    [
      "\\Device\\HarddiskVolume3\\Users\\a\\appdata\\roaming\\microsoft\\windows\\start menu\\programs\\startup",
      "T1547.001",
    ],
    ["C:\\ProgramData\\Microsoft\\Windows\\Start Menu\\Programs\\StartUp\\y.lnk", "T1547.001"],
    ["\\??\\C:\\Windows\\System32\\Tasks\\Evil", "T1053.005"],
    ["C:\\Windows\\Sysnative\\Tasks\\Microsoft\\x", "T1053.005"],
    ["\\\\localhost\\C$\\Windows\\System32\\Tasks", "T1053.005"],
  ];
  for (const [path, mitre] of fileTable) {
    it(`file high-risk: ${path} -> ${mitre}`, () => {
      for (const operation of ["write", "create", "delete"] as const)
        expect(check(e, { path, operation, volumes })).toMatchObject({
          decision: "deny",
          rule: "builtin:high-risk",
          mitre,
        });
      expect(check(e, { path, operation: "read", volumes })).toMatchObject({ decision: "allow", mitre });
    });
  }
  it("file high-risk: neighbours are not", () => {
    for (const path of [
      "C:\\Windows\\System32\\TasksBackup\\x",
      "C:\\Windows\\Tasks\\x",
      "C:\\Users\\dev\\AppData\\Roaming\\Startup\\x",
      "C:\\Users\\dev\\Documents\\Tasks\\Startup\\x",
    ])
      expect(check(e, { path, operation: "read" })).toMatchObject({ mitre: "" });
  });
});

describe("rename", () => {
  const e = PolicyEngine.fromText(
    `${base}
default_action: deny
file_rules:
  - name: src
    paths: ['C:\\src\\**']
    operations: ['*']
    decision: allow
  - name: dropbox
    paths: ['C:\\drop\\**']
    operations: [create]
    decision: allow
  - name: approve-out
    paths: ['C:\\out\\**']
    operations: [write, create]
    decision: approve
registry_rules:
  - name: app
    paths: ['HKCU\\Software\\App\\**']
    operations: ['*']
    decision: allow
`.replace("default_action: allow\n", ""),
  );
  it("both sides allowed", () => {
    const d = check(e, { operation: "rename", path: "C:\\src\\a", renameDest: "C:\\src\\b" });
    expect(d).toMatchObject({ decision: "allow", decidedSide: "source" });
  });
  it("destination denies", () => {
    const d = check(e, { operation: "rename", path: "C:\\src\\a", renameDest: "C:\\etc\\b" });
    expect(d).toMatchObject({ decision: "deny", decidedSide: "destination", rule: "default" });
  });
  it("source denies", () => {
    const d = check(e, { operation: "rename", path: "C:\\etc\\a", renameDest: "C:\\src\\b" });
    expect(d).toMatchObject({ decision: "deny", decidedSide: "source" });
  });
  it("destination needs write as well as create", () => {
    const d = check(e, { operation: "rename", path: "C:\\src\\a", renameDest: "C:\\drop\\b" });
    expect(d).toMatchObject({ decision: "deny", decidedSide: "destination" });
  });
  it("approve at the destination", () => {
    expect(check(e, { operation: "rename", path: "C:\\src\\a", renameDest: "C:\\out\\b" })).toMatchObject({
      decision: "approve",
      decidedSide: "destination",
    });
  });
  it("missing or invalid destination is denied", () => {
    expect(check(e, { operation: "rename", path: "C:\\src\\a" })).toMatchObject({
      decision: "deny",
      decidedSide: "destination",
    });
  });
  it("registry key rename to a sibling name", () => {
    expect(
      e.decide({
        kind: "registry",
        operation: "rename",
        path: "HKCU\\Software\\App\\a",
        renameDest: "b",
        session,
      }),
    ).toMatchObject({ decision: "allow" });
    expect(
      e.decide({
        kind: "registry",
        operation: "rename",
        path: "HKCU\\Software\\App\\a",
        renameDest: "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
        session,
      }),
    ).toMatchObject({ decision: "deny", decidedSide: "destination", mitre: "T1547.001" });
  });
  it("a sibling name is next to the key, whether the source ends with \\ or not", () => {
    for (const path of [
      "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\MyApp",
      "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\MyApp\\",
    ]) {
      const d = e.decide({ kind: "registry", operation: "rename", path, renameDest: "RunOnce", session });
      expect(d, path).toMatchObject({ decision: "deny", mitre: "T1547.001" });
      expect(d.renamePaths?.destination).toBe(
        `HKU\\${SID}\\Software\\Microsoft\\Windows\\CurrentVersion\\RunOnce`,
      );
    }
  });
});

describe("rename of what holds a high-risk location", () => {
  const e = PolicyEngine.fromText(
    `${base}
default_action: deny
file_rules:
  - {name: users, paths: ['C:\\Users\\**'], operations: ['*'], decision: allow}
registry_rules:
  - {name: sw, paths: ['HKCU\\Software\\**'], operations: ['*'], decision: allow}
`.replace("default_action: allow\n", ""),
  );
  const startMenu = "C:\\Users\\bob\\AppData\\Roaming\\Microsoft\\Windows\\Start Menu";
  it("moving it away or moving a folder into its place is the high-risk location's", () => {
    for (const [path, renameDest, side] of [
      [startMenu, `${startMenu}.old`, "source"],
      ["C:\\Users\\bob\\staging", startMenu, "destination"],
    ] as const) {
      const d = check(e, { operation: "rename", path, renameDest });
      expect(d, path).toMatchObject({
        decision: "deny",
        rule: "builtin:high-risk",
        mitre: "T1547.001",
        decidedSide: side,
      });
      expect(d.reason).toMatch(/^it holds Startup Folder, which a rename moves; rule "users" allows it/);
    }
    const key = (path: string, renameDest: string) =>
      e.decide({ kind: "registry", operation: "rename", path, renameDest, session });
    expect(key("HKCU\\Software\\Microsoft\\Windows\\CurrentVersion", "CurrentVersion.old")).toMatchObject({
      decision: "deny",
      mitre: "T1547.001",
    });
    expect(key("HKCU\\Software\\Microsoft\\Windows\\Staging", "CurrentVersion")).toMatchObject({
      decision: "deny",
      decidedSide: "destination",
    });
  });
  it("not other renames, nor writes next to it, nor every folder (the Startup pattern starts with **)", () => {
    for (const [path, renameDest] of [
      ["C:\\Users\\bob\\a.txt", "C:\\Users\\bob\\b.txt"],
      ["C:\\Users\\bob\\projects", "C:\\Users\\bob\\work"],
    ] as const)
      expect(check(e, { operation: "rename", path, renameDest })).toMatchObject({
        decision: "allow",
        mitre: "",
      });
    expect(check(e, { path: `${startMenu}\\x.txt` })).toMatchObject({ decision: "allow", mitre: "" });
    expect(
      e.decide({
        kind: "registry",
        operation: "rename",
        path: "HKCU\\Software\\Vendor",
        renameDest: "V2",
        session,
      }),
    ).toMatchObject({ decision: "allow", mitre: "" });
  });
});

describe("rule order, priority, globs, ttl, monitor", () => {
  const e = PolicyEngine.fromText(`${base}
file_rules:
  - name: first
    paths: ['C:\\a\\**']
    operations: [write]
    decision: deny
    cache_ttl: 2s
  - name: second
    paths: ['C:\\a\\b\\**']
    operations: [write]
    decision: allow
  - name: pem
    paths: ['**\\*.pem', 'C:\\k\\id_???', 'C:\\x\\pre*suf']
    operations: [read]
    decision: deny
registry_rules:
  - name: low
    paths: ['HKLM\\SOFTWARE\\Vendor\\**']
    operations: [write]
    decision: deny
  - name: high
    paths: ['HKLM\\SOFTWARE\\Vendor\\App\\*']
    operations: [write]
    decision: audit
    priority: 10
  - name: cs
    paths: ['HKLM\\SYSTEM\\ControlSet00?\\Control\\Vendor']
    operations: [write]
    decision: deny
`);
  it("file rules: first match in order", () => {
    expect(check(e, { path: "C:\\a\\b\\c" })).toMatchObject({ rule: "first", cacheTtlMs: 2000 });
    // `**` also matches nothing below the folder, and any depth.
    expect(check(e, { path: "C:\\a" }).rule).toBe("first");
    expect(check(e, { path: "C:\\a\\b\\c\\d\\e\\f" }).rule).toBe("first");
    const reversed = PolicyEngine.fromText(`${base}
file_rules:
  - name: inner
    paths: ['C:\\a\\b\\**']
    operations: [write]
    decision: allow
  - name: outer
    paths: ['C:\\a\\**', 'C:\\a\\b\\c\\**']
    operations: [write]
    decision: deny
`);
    expect(check(reversed, { path: "C:\\a\\b\\c\\d" }).rule).toBe("inner");
    expect(check(reversed, { path: "C:\\a\\b" }).rule).toBe("inner");
    expect(check(reversed, { path: "C:\\a\\x\\y" }).rule).toBe("outer");
    expect(check(reversed, { path: "C:\\a" }).rule).toBe("outer");
  });
  it("registry rules: priority first", () => {
    expect(
      e.decide({ kind: "registry", operation: "write", path: "HKLM\\SOFTWARE\\Vendor\\App\\k" }),
    ).toMatchObject({
      rule: "high",
      decision: "audit",
    });
    // `*` stays in one component
    expect(
      e.decide({ kind: "registry", operation: "write", path: "HKLM\\SOFTWARE\\Vendor\\App\\k\\sub" }).rule,
    ).toBe("low");
  });
  it("globs", () => {
    expect(check(e, { operation: "read", path: "D:\\deep\\dir\\server.PEM" }).rule).toBe("pem");
    expect(check(e, { operation: "read", path: "C:\\k\\id_rsa" }).rule).toBe("pem");
    expect(check(e, { operation: "read", path: "C:\\k\\id_rsa2" }).rule).toBe("default_read");
    expect(check(e, { operation: "read", path: "C:\\x\\pre-mid-SUF" }).rule).toBe("pem");
    expect(check(e, { operation: "read", path: "C:\\x\\presuf2" }).rule).toBe("default_read");
  });
  it("ControlSet glob also covers CurrentControlSet", () => {
    expect(
      e.decide({
        kind: "registry",
        operation: "write",
        path: "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Vendor",
      }).rule,
    ).toBe("cs");
  });
  it("monitor mode answers allow with the enforced decision", () => {
    const m = PolicyEngine.fromText(
      `${base.replace("default_action: allow", "default_action: deny")}mode: monitor\n`,
    );
    expect(check(m, { path: "C:\\x" })).toMatchObject({
      decision: "allow",
      enforcedDecision: "deny",
      wouldDeny: true,
      mode: "monitor",
      cacheTtlMs: 5000,
    });
  });
});

describe("session variables", () => {
  const e = PolicyEngine.fromText(
    `${base}
default_action: deny
file_rules:
  - name: secrets
    paths: ['\${USERPROFILE}\\.ssh\\**']
    operations: ['*']
    decision: deny
  - name: ws
    paths: ['\${WORKSPACE}\\**']
    operations: ['*']
    decision: allow
  - name: bin
    paths: ['C:\\$Recycle.Bin\\\${USERSID}\\**']
    operations: ['*']
    decision: allow
registry_rules:
  - name: hkcr
    paths: ['HKCR\\.agentsh\\**']
    operations: ['*']
    decision: allow
`.replace("default_action: allow\n", ""),
  );
  it("per-session expansion, sessions do not leak into each other", () => {
    const a = { workspace: "C:\\ws\\a", userSid: SID, userProfile: "C:\\Users\\a" };
    const b = {
      workspace: "\\Device\\HarddiskVolume3\\ws\\b",
      userSid: "S-1-5-21-9-9-9-1002",
      userProfile: "C:\\Users\\b",
    };
    expect(e.decide({ kind: "file", operation: "write", path: "C:\\ws\\a\\x", session: a }).rule).toBe("ws");
    expect(e.decide({ kind: "file", operation: "write", path: "C:\\ws\\a\\x", session: b }).rule).toBe(
      "default",
    );
    expect(
      e.decide({ kind: "file", operation: "write", path: "C:\\ws\\b\\x", session: b, volumes }).rule,
    ).toBe("ws");
    expect(
      e.decide({ kind: "file", operation: "write", path: `C:\\$Recycle.Bin\\${SID}\\f`, session: a }).rule,
    ).toBe("bin");
    expect(
      e.decide({ kind: "file", operation: "write", path: `C:\\$Recycle.Bin\\${SID}\\f`, session: b }).rule,
    ).toBe("default");
  });
  it("unbound variables: deny rules widen, allow rules do not apply", () => {
    const none = {};
    expect(
      e.decide({ kind: "file", operation: "read", path: "D:\\any\\where\\.ssh\\id_rsa", session: none }).rule,
    ).toBe("secrets");
    expect(e.decide({ kind: "file", operation: "write", path: "C:\\ws\\a\\x", session: none }).rule).toBe(
      "default",
    );
  });
  it("HKCR patterns cover both the machine and the user classes", () => {
    for (const p of [
      "HKCR\\.agentsh\\x",
      "HKLM\\SOFTWARE\\Classes\\.agentsh\\x",
      `\\REGISTRY\\USER\\${SID}_Classes\\.agentsh\\x`,
    ]) {
      expect(e.decide({ kind: "registry", operation: "write", path: p, session }).rule).toBe("hkcr");
    }
    expect(
      e.decide({
        kind: "registry",
        operation: "write",
        path: "\\REGISTRY\\USER\\S-1-5-21-7-7-7-7_Classes\\.agentsh\\x",
        session,
      }).rule,
    ).toBe("default");
  });
});

describe("8.3 short names", () => {
  const e = PolicyEngine.fromText(`${base}
file_rules:
  - name: secrets
    paths: ['C:\\Users\\*\\.ssh\\**', 'C:\\Program Files\\Vault\\**']
    operations: ['*']
    decision: deny
  - name: tools
    paths: ['C:\\Program Files\\**']
    operations: [read]
    decision: allow
  - name: ws
    paths: ['C:\\ws\\**']
    operations: ['*']
    decision: allow
`);
  it("a short name that may stand for a denied long name is denied", () => {
    expect(check(e, { operation: "read", path: "C:\\Users\\dev\\SSH~1\\id_rsa" })).toMatchObject({
      decision: "deny",
      rule: "secrets",
    });
    expect(check(e, { operation: "read", path: "C:\\PROGRA~1\\Vault\\x" })).toMatchObject({
      decision: "deny",
    });
    expect(check(e, { operation: "read", path: "C:\\PROGRA~1\\VAULT~1\\x" }).reason).toMatch(
      /8\.3 short name/,
    );
  });
  it("a short name under a robust allow is allowed", () => {
    expect(check(e, { operation: "read", path: "C:\\ws\\LONGFI~1.TXT" })).toMatchObject({
      decision: "allow",
      rule: "ws",
    });
    expect(check(e, { operation: "read", path: "C:\\PROGRA~1\\Other\\x" })).toMatchObject({
      decision: "allow",
    });
  });
  it("a short name does not take a write out of a high-risk location", () => {
    const pd = PolicyEngine.fromText(`${base}
file_rules:
  - name: programdata
    paths: ['C:\\ProgramData\\**']
    operations: ['*']
    decision: allow
`);
    for (const path of [
      "C:\\ProgramData\\Microsoft\\Windows\\STARTM~1\\Programs\\StartUp\\evil.lnk",
      "C:\\ProgramData\\Microsoft\\Windows\\Start Menu\\PROGRA~1\\STARTU~1\\evil.lnk",
    ]) {
      expect(check(pd, { path })).toMatchObject({
        decision: "deny",
        rule: "builtin:high-risk",
        mitre: "T1547.001",
        reason: expect.stringMatching(/8\.3 short name .* may stand for a name in Startup Folder/),
      });
      expect(check(pd, { path, operation: "read" })).toMatchObject({ decision: "allow", mitre: "T1547.001" });
    }
    // DOCUME~1 cannot stand for "Start Menu".
    expect(
      check(pd, { path: "C:\\ProgramData\\Microsoft\\Windows\\DOCUME~1\\Programs\\StartUp\\x" }),
    ).toMatchObject({ decision: "allow", rule: "programdata", mitre: "" });
  });
  it("a short name that cannot be the denied name is not", () => {
    expect(check(e, { operation: "read", path: "C:\\Users\\dev\\DOCUME~1\\x" })).toMatchObject({
      decision: "allow",
    });
  });
});

describe("load errors", () => {
  it("pattern errors carry the position", () => {
    try {
      PolicyEngine.fromText(
        `${base}file_rules:\n  - name: x\n    paths: ['C:\\a\\..\\b']\n    operations: [read]\n    decision: deny\n`,
        {
          file: "p.yaml",
        },
      );
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PolicyError);
      const pe = err as PolicyError;
      expect([pe.code, pe.file, pe.line, pe.column]).toEqual(["pattern", "p.yaml", 8, 13]);
      expect(pe.format()).toMatch(
        /^p\.yaml:8:13: error: rule "x": pattern "C:\\a\\\.\.\\b": '\.\.' in a pattern/,
      );
    }
  });
  it("unknown and misplaced variables", () => {
    expect(() =>
      PolicyEngine.fromText(
        `${base}file_rules:\n  - name: x\n    paths: ['\${HOME}\\x']\n    operations: [read]\n    decision: deny\n`,
      ),
    ).toThrow(/unknown variable/);
    expect(() =>
      PolicyEngine.fromText(
        `${base}file_rules:\n  - name: x\n    paths: ['C:\\\${WORKSPACE}']\n    operations: [read]\n    decision: deny\n`,
      ),
    ).toThrow(/must start the pattern/);
    expect(() =>
      PolicyEngine.fromText(
        `${base}registry_rules:\n  - name: x\n    paths: ['\${WORKSPACE}\\x']\n    operations: [read]\n    decision: deny\n`,
      ),
    ).toThrow(/registry/);
  });
});
