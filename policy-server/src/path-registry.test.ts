import { describe, expect, it } from "vitest";
import { canonicalizeRegistry, type RegistryContext } from "./path-registry.js";
import { type CanonicalPath, isFailure } from "./path-types.js";

const SID = "S-1-5-21-1111-2222-3333-1001";
const ctx = { userSid: SID };
function keys(p: string, c: RegistryContext = ctx): string {
  const r = canonicalizeRegistry(p, c);
  if (isFailure(r)) throw new Error(`${p}: ${r.error}`);
  return r.keys.join("\\");
}
function error(p: string, c: RegistryContext = ctx): string {
  const r = canonicalizeRegistry(p, c);
  if (!isFailure(r)) throw new Error(`${p} canonicalised to ${r.display}`);
  return r.error;
}

describe("registry: HKCC", () => {
  it("is the current hardware profile, whatever its number in the path the kernel reports", () => {
    const want = "HKLM\\SYSTEM\\CURRENTCONTROLSET\\HARDWARE PROFILES\\CURRENT\\SOFTWARE\\FONTS\\X";
    expect(keys("HKCC\\Software\\Fonts\\x")).toBe(want);
    expect(
      keys("\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Hardware Profiles\\0001\\Software\\Fonts\\x"),
    ).toBe(want);
    expect(keys("HKLM\\SYSTEM\\CurrentControlSet\\Hardware Profiles\\Current\\Software\\Fonts\\x")).toBe(
      want,
    );
    const r = canonicalizeRegistry("HKLM\\SYSTEM\\ControlSet002\\Hardware Profiles\\0001\\Software", ctx);
    expect(r).toMatchObject({
      display: "HKLM\\SYSTEM\\CurrentControlSet\\Hardware Profiles\\Current\\Software",
    });
  });
});

describe("registry: HKLM forms", () => {
  const want = "HKLM\\SOFTWARE\\MICROSOFT\\WINDOWS\\CURRENTVERSION\\RUN";
  for (const p of [
    "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
    "hklm\\software\\microsoft\\windows\\currentversion\\run",
    "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
    "\\REGISTRY\\MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
    "\\Registry\\Machine\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\",
    "HKLM\\SOFTWARE\\Wow6432Node\\Microsoft\\Windows\\CurrentVersion\\Run",
    "HKLM\\SOFTWARE\\WowAA32Node\\Microsoft\\Windows\\CurrentVersion\\Run",
    "HKLM\\\\SOFTWARE\\Microsoft\\\\Windows\\CurrentVersion\\Run",
    "Computer\\HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
    "HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
    "Registry::HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
    "Microsoft.PowerShell.Core\\Registry::HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
  ]) {
    it(p, () => expect(keys(p)).toBe(want));
  }
});

describe("registry: user hives", () => {
  const run = `HKU\\${SID}\\SOFTWARE\\MICROSOFT\\WINDOWS\\CURRENTVERSION\\RUNONCE`;
  it("HKCU is the session user's hive", () => {
    expect(keys("HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\RunOnce")).toBe(run);
    expect(keys("HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\RunOnce")).toBe(run);
    expect(keys(`\\REGISTRY\\USER\\${SID}\\Software\\Microsoft\\Windows\\CurrentVersion\\RunOnce`)).toBe(run);
    expect(
      keys(`HKU\\${SID.toLowerCase()}\\Software\\Wow6432Node\\Microsoft\\Windows\\CurrentVersion\\RunOnce`),
    ).toBe(run);
  });
  it("HKCU without a SID is refused", () => {
    expect(error("HKCU\\Software\\x", {})).toMatch(/needs the session's user SID/);
    expect(error("HKCU\\Software\\x", { userSid: "bob" })).toMatch(/invalid user SID/);
  });
  it("Software\\Classes of a user is the _Classes hive", () => {
    const want = `HKU\\${SID}_CLASSES\\CLSID\\{X}\\INPROCSERVER32`;
    expect(keys("HKCU\\Software\\Classes\\CLSID\\{x}\\InprocServer32")).toBe(want);
    expect(keys(`\\REGISTRY\\USER\\${SID}_Classes\\CLSID\\{x}\\InprocServer32`)).toBe(want);
    expect(keys(`HKU\\${SID}\\SOFTWARE\\Classes\\Wow6432Node\\CLSID\\{x}\\InprocServer32`)).toBe(want);
    // the aliases combine: Software\Wow6432Node\Classes is Software\Classes
    expect(keys("HKCU\\Software\\Wow6432Node\\Classes\\CLSID\\{x}\\InprocServer32")).toBe(want);
    expect(keys("HKCU\\Software\\Wow6432Node\\Classes\\Wow6432Node\\CLSID\\{x}\\InprocServer32")).toBe(want);
    expect(keys("HKLM\\SOFTWARE\\Wow6432Node\\Classes\\Wow6432Node\\CLSID\\{x}")).toBe(
      "HKLM\\SOFTWARE\\CLASSES\\CLSID\\{X}",
    );
    expect(keys("HKEY_CURRENT_USER_LOCAL_SETTINGS\\x")).toBe(`HKU\\${SID}_CLASSES\\LOCAL SETTINGS\\X`);
  });
  it(".DEFAULT is LocalSystem's hive", () => {
    expect(keys("HKU\\.DEFAULT\\Software\\x")).toBe("HKU\\S-1-5-18\\SOFTWARE\\X");
    expect(keys("\\REGISTRY\\USER\\.Default\\Software\\x")).toBe("HKU\\S-1-5-18\\SOFTWARE\\X");
  });
});

describe("registry: aliases", () => {
  it("HKCR is read as HKLM\\SOFTWARE\\Classes", () => {
    expect(keys("HKCR\\CLSID\\{x}")).toBe("HKLM\\SOFTWARE\\CLASSES\\CLSID\\{X}");
    expect(keys("HKEY_CLASSES_ROOT\\Wow6432Node\\CLSID\\{x}")).toBe("HKLM\\SOFTWARE\\CLASSES\\CLSID\\{X}");
  });
  it("control sets fold into CurrentControlSet", () => {
    const want = "HKLM\\SYSTEM\\CURRENTCONTROLSET\\SERVICES\\EVIL";
    expect(keys("\\REGISTRY\\MACHINE\\SYSTEM\\ControlSet001\\Services\\evil")).toBe(want);
    expect(keys("HKLM\\SYSTEM\\ControlSet002\\Services\\evil")).toBe(want);
    expect(keys("HKLM\\SYSTEM\\currentcontrolset\\Services\\evil")).toBe(want);
    expect(keys("HKLM\\SYSTEM\\ControlSetX\\x")).toBe("HKLM\\SYSTEM\\CONTROLSETX\\X");
  });
  it("a folded control set is displayed as CurrentControlSet, in the path's case elsewhere", () => {
    const shown = (p: string) => (canonicalizeRegistry(p) as CanonicalPath).display;
    expect(shown("\\REGISTRY\\MACHINE\\System\\ControlSet001\\Services\\Evil")).toBe(
      "HKLM\\System\\CurrentControlSet\\Services\\Evil",
    );
    expect(shown("HKLM\\SYSTEM\\currentcontrolset\\\\Services\\evil\\")).toBe(
      "HKLM\\SYSTEM\\CurrentControlSet\\Services\\evil",
    );
    expect(shown("HKLM\\SYSTEM\\ControlSet002")).toBe("HKLM\\SYSTEM\\CurrentControlSet");
  });
  it("HKCC", () => {
    expect(keys("HKCC\\Software")).toBe(
      "HKLM\\SYSTEM\\CURRENTCONTROLSET\\HARDWARE PROFILES\\CURRENT\\SOFTWARE",
    );
  });
  it("application hives keep their root", () => {
    expect(keys("\\REGISTRY\\A\\{abc}\\Settings")).toBe("\\REGISTRY\\A\\{ABC}\\SETTINGS");
  });
  it("'/' is part of a key name, not a separator", () => {
    expect(keys("HKCR\\MIME\\Database\\Content Type\\text/html")).toBe(
      "HKLM\\SOFTWARE\\CLASSES\\MIME\\DATABASE\\CONTENT TYPE\\TEXT/HTML",
    );
  });
  it("trailing dots and spaces are part of a key name", () => {
    expect(keys("HKLM\\SOFTWARE\\Run.")).toBe("HKLM\\SOFTWARE\\RUN.");
  });
  it("Unicode case", () => {
    expect(keys("HKLM\\SOFTWARE\\ÆØÅ")).toBe(keys("hklm\\software\\æøå"));
  });
});

describe("registry: refused", () => {
  for (const [p, re] of [
    ["", /empty/],
    ["HKLM\\SOFTWARE\\a\u0000b", /control character U\+0000/],
    ["HKLM\\SOFTWARE\\..\\SYSTEM", /ambiguous/],
    ["HKLM\\SOFTWARE\\.\\x", /ambiguous/],
    ["HKXX\\x", /unknown registry root/],
    ["HKEY_PERFORMANCE_DATA\\x", /unknown registry root/],
    ["SOFTWARE\\x", /unknown registry root/],
    ["\\REGISTRY", /not a registry path/],
    ["\\Device\\x", /not a registry path/],
    [`HKLM\\${"k".repeat(256)}`, /longer than 255/],
  ] as const) {
    it(JSON.stringify(p.slice(0, 50)), () => expect(error(p)).toMatch(re));
  }
});
