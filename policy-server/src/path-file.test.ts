import { describe, expect, it } from "vitest";
import { canonicalizeFile } from "./path-file.js";
import { type CanonicalResult, isFailure } from "./path-types.js";
import { VolumeMap } from "./path-volumes.js";

const volumes = new VolumeMap([
  ["\\Device\\HarddiskVolume3", "C:"],
  ["\\Device\\HarddiskVolume5", "D:\\mnt\\data"],
  ["\\\\?\\Volume{0d3f5c2e-1111-2222-3333-444455556666}\\", "E:"],
]);
const ctx = { volumes, localHosts: ["BUILD01"] };

function keys(p: string): string {
  const r: CanonicalResult = canonicalizeFile(p, ctx);
  if (isFailure(r)) throw new Error(`${p}: ${r.error}`);
  return r.keys.join("\\");
}
function error(p: string): string {
  const r = canonicalizeFile(p, ctx);
  if (!isFailure(r)) throw new Error(`${p} canonicalised to ${r.display}`);
  return r.error;
}

describe("file paths: every spelling of C:\\Users\\dev\\.ssh\\id_rsa is one object", () => {
  const same = [
    "C:\\Users\\dev\\.ssh\\id_rsa",
    "c:\\users\\DEV\\.SSH\\ID_RSA",
    "C:/Users/dev/.ssh/id_rsa",
    "C:\\\\Users\\\\dev\\.ssh\\\\id_rsa\\",
    "C:\\Users\\.\\dev\\x\\..\\.ssh\\id_rsa",
    "\\\\?\\C:\\Users\\dev\\.ssh\\id_rsa",
    "\\\\.\\C:\\Users\\dev\\.ssh\\id_rsa",
    "\\??\\C:\\Users\\dev\\.ssh\\id_rsa",
    "\\GLOBAL??\\C:\\Users\\dev\\.ssh\\id_rsa",
    "\\DosDevices\\C:\\Users\\dev\\.ssh\\id_rsa",
    "\\??\\GLOBALROOT\\Device\\HarddiskVolume3\\Users\\dev\\.ssh\\id_rsa",
    "\\\\?\\GLOBALROOT\\Device\\HarddiskVolume3\\Users\\dev\\.ssh\\id_rsa",
    "\\Device\\HarddiskVolume3\\Users\\dev\\.ssh\\id_rsa",
    "\\\\.\\HarddiskVolume3\\Users\\dev\\.ssh\\id_rsa",
    "\\??\\HarddiskVolume3\\Users\\dev\\.ssh\\id_rsa",
    "\\device\\harddiskvolume3\\Users\\dev\\.ssh\\id_rsa",
    "C:\\Users\\dev\\.ssh\\id_rsa::$DATA",
    "C:\\Users\\dev\\.ssh\\id_rsa:hidden:$DATA",
    "C:\\Users\\dev\\.ssh\\id_rsa.",
    "C:\\Users\\dev\\.ssh\\id_rsa. . ",
    "C:\\Users\\dev \\.ssh.\\id_rsa",
    "C:\\Users\\dev\\.ssh::$INDEX_ALLOCATION\\id_rsa",
    "C:\\Users\\dev\\.ssh:$I30:$INDEX_ALLOCATION\\id_rsa",
    "\\\\localhost\\C$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\127.0.0.1\\c$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\127.1\\c$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\2130706433\\c$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\0x7f.0.0.1\\c$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\[::1]\\c$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\0--1.ipv6-literal.net\\c$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\0-0-0-0-0-0-0-1.ipv6-literal.net\\c$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\--1.ipv6-literal.net\\c$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\0--1s1.ipv6-literal.net\\c$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\0--ffff-7f00-1.ipv6-literal.net\\c$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\[0:0:0:0:0:0:0:1]\\c$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\[::ffff:127.0.0.1]\\c$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\build01\\C$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\localhost.\\C$\\Users\\dev\\.ssh\\id_rsa",
    "\\\\?\\UNC\\localhost\\C$\\Users\\dev\\.ssh\\id_rsa",
    "\\Device\\Mup\\localhost\\C$\\Users\\dev\\.ssh\\id_rsa",
    "\\Device\\Mup\\;LanmanRedirector\\;Z:000000000001a2b3\\localhost\\C$\\Users\\dev\\.ssh\\id_rsa",
  ];
  for (const p of same) {
    it(p, () => expect(keys(p)).toBe("C:\\USERS\\DEV\\.SSH\\ID_RSA"));
  }
});

describe("file paths: other roots", () => {
  it("UNC forms", () => {
    const want = "\\\\\\SERVER\\SHARE\\DIR\\F.TXT";
    expect(keys("\\\\server\\share\\dir\\f.txt")).toBe(want);
    expect(keys("\\\\?\\UNC\\server\\share\\dir\\f.txt")).toBe(want);
    expect(keys("\\\\.\\UNC\\Server\\Share\\dir\\f.txt")).toBe(want);
    expect(keys("\\??\\UNC\\server\\share\\dir\\f.txt")).toBe(want);
    expect(keys("\\Device\\Mup\\server\\share\\dir\\f.txt")).toBe(want);
    expect(keys("\\Device\\LanmanRedirector\\;Z:0000000000012345\\server\\share\\dir\\f.txt")).toBe(want);
    expect(keys("//server/share/dir/f.txt")).toBe(want);
    expect(keys("\\\\server.\\share\\dir\\f.txt")).toBe(want);
    // a non-admin share on this machine stays a UNC path
    expect(keys("\\\\localhost\\projects\\x")).toBe("\\\\\\LOCALHOST\\PROJECTS\\X");
    // another IPv6 host is another machine
    expect(keys("\\\\[::2]\\c$\\x")).toBe("\\\\\\[::2]\\C$\\X");
    // ADMIN$ and PRINT$ of this machine are folders of its Windows directory: refused, named
    expect(error("\\\\localhost\\ADMIN$\\System32\\Tasks\\evil")).toMatch(
      /\\\\localhost\\ADMIN\$ is a folder of this machine's Windows directory: use its local path/,
    );
    expect(error("\\\\[::1]\\print$\\x")).toMatch(/Windows directory/);
    expect(keys("\\\\fileserver\\ADMIN$\\x")).toBe("\\\\\\FILESERVER\\ADMIN$\\X");
  });
  it("mount folder and volume GUID from the volume map", () => {
    expect(keys("\\Device\\HarddiskVolume5\\a\\b")).toBe("D:\\MNT\\DATA\\A\\B");
    expect(canonicalizeFile("\\Device\\HarddiskVolume5\\a\\b", ctx)).toMatchObject({
      display: "D:\\mnt\\data\\a\\b",
    });
    // the folder is the volume's root: `..` does not climb out of it (nor out of a GUID-named one)
    expect(error("\\Device\\HarddiskVolume5\\..\\other\\x")).toMatch(/'\.\.' climbs above the root/);
    expect(keys("\\Device\\HarddiskVolume5\\a\\..\\b")).toBe("D:\\MNT\\DATA\\B");
    // a ~ or a ? in the path is still seen with a folder root
    expect(keys("\\Device\\HarddiskVolume5\\PROGRA~1\\x")).toBe("D:\\MNT\\DATA\\PROGRA~1\\X");
    expect(canonicalizeFile("\\Device\\HarddiskVolume5\\PROGRA~1\\x", ctx)).toMatchObject({
      shortNames: [3],
    });
    expect(error("\\Device\\HarddiskVolume5\\a?b")).toMatch(/invalid character/);
    expect(keys("\\device\\harddiskvolume3\\a")).toBe("C:\\A");
    expect(keys("\\\\?\\Volume{0D3F5C2E-1111-2222-3333-444455556666}\\x")).toBe("E:\\X");
    expect(keys("\\??\\Volume{0d3f5c2e-1111-2222-3333-444455556666}\\x")).toBe("E:\\X");
  });
  it("drive root", () => {
    const r = canonicalizeFile("c:\\", ctx);
    expect(r).toMatchObject({ keys: ["C:"], display: "C:\\" });
  });
  it("Sysnative is System32", () => {
    expect(keys("C:\\Windows\\Sysnative\\drivers\\x.sys")).toBe("C:\\WINDOWS\\SYSTEM32\\DRIVERS\\X.SYS");
    expect(keys("C:\\Other\\Sysnative\\x")).toBe("C:\\OTHER\\SYSNATIVE\\X");
  });
  it("Unicode case like Windows, without folding or normalisation", () => {
    expect(keys("C:\\Ünïcödé\\ÆØÅ\\straße")).toBe("C:\\ÜNÏCÖDÉ\\ÆØÅ\\STRAßE");
    expect(keys("C:\\ΣΊΣΥΦΟΣ\\файл")).toBe(keys("C:\\σίσυφος\\ФАЙЛ"));
    // dotless i and long s do not become ASCII I and S (as in Windows)
    expect(keys("C:\\ſecret\\fıle")).not.toBe(keys("C:\\secret\\file"));
    // NFC and NFD are different names on NTFS
    expect(keys("C:\\caf\u00e9")).not.toBe(keys("C:\\cafe\u0301"));
    // fullwidth letters are not ASCII letters
    expect(keys("C:\\ｓｅｃｒｅｔ")).not.toBe(keys("C:\\secret"));
  });
  it("streams are reported", () => {
    expect(canonicalizeFile("C:\\a\\b.txt:Zone.Identifier:$DATA", ctx)).toMatchObject({
      display: "C:\\a\\b.txt",
      stream: ":Zone.Identifier:$DATA",
    });
  });
  it("8.3 short names are flagged", () => {
    expect(canonicalizeFile("C:\\PROGRA~1\\x\\LONGFI~12.TXT", ctx)).toMatchObject({ shortNames: [1, 3] });
    expect(canonicalizeFile("C:\\PROGRA~1\\..\\x", ctx)).not.toHaveProperty("shortNames");
    expect(canonicalizeFile("C:\\a~b\\x~.txt", ctx)).not.toHaveProperty("shortNames");
  });
});

describe("file paths that are denied with a reason", () => {
  const cases: [string, RegExp][] = [
    ["", /empty/],
    ["C:", /drive-relative/],
    ["C:foo\\bar", /drive-relative/],
    ["\\Users\\x", /not a file path/],
    ["relative\\path", /relative path/],
    ["C:\\..\\Windows", /above the root/],
    ["C:\\a\\..\\..\\b", /above the root/],
    ["\\\\server\\share\\..\\other\\x", /above the root/],
    ["C:\\a\u0000b", /control character U\+0000/],
    ["C:\\a\nb", /control character/],
    ["C:\\a\\...\\b", /only dots/],
    ["C:\\a\\. .\\b", /only dots/],
    ["C:\\a\\*.txt", /invalid character/],
    ["C:\\a\\b?", /invalid character/],
    ["C:\\a\\<b", /invalid character/],
    ["C:\\a\\CON", /DOS device name/],
    ["C:\\a\\nul.txt", /DOS device name/],
    ["C:\\a\\com1 .log", /DOS device name/],
    ["C:\\a\\LPT\u00b9", /DOS device name/],
    ["C:\\a\\conout$", /DOS device name/],
    ["C:\\a\\:stream", /without a file name/],
    ["\\\\.\\C:", /raw volume/],
    ["\\\\?\\C:", /raw volume/],
    ["\\Device\\HarddiskVolume3", /raw volume/],
    ["\\\\.\\PhysicalDrive0", /raw disk/],
    ["\\\\.\\HarddiskVolume3", /raw volume/],
    ["\\\\.\\HarddiskVolume9\\x", /not in the volume map/],
    ["\\Device\\Harddisk0\\DR0", /raw disk/],
    ["\\Device\\HarddiskVolume9\\x", /not in the volume map/],
    // Object names are exact: HarddiskVolume03 is not HarddiskVolume3.
    ["\\Device\\HarddiskVolume03\\Users\\x", /HarddiskVolume03 is not in the volume map/],
    ["\\Device\\HarddiskVolume30000000\\x", /not in the volume map/],
    ["\\device\\harddiskvolume3", /raw volume access \(\\Device\\harddiskvolume3\)/],
    ["\\Device\\HarddiskVolumeShadowCopy1\\Windows\\NTDS\\ntds.dit", /shadow copy/],
    ["\\\\?\\Volume{11111111-2222-3333-4444-555555555555}\\x", /not in the volume map/],
    ["\\\\.\\pipe\\x", /not a file on a volume/],
    ["\\SystemRoot\\System32\\x", /not a file path/],
    ["\\\\server", /UNC path needs/],
    [`C:\\${"a".repeat(32768)}`, /longer than/],
  ];
  for (const [p, re] of cases) {
    it(JSON.stringify(p.slice(0, 60)), () => expect(error(p)).toMatch(re));
  }
});

describe("file patterns", () => {
  const pat = (p: string) => {
    const r = canonicalizeFile(p, ctx, true);
    return isFailure(r) ? `ERR ${r.error}` : r.keys.join("\\");
  };
  it("globs and globstars", () => {
    expect(pat("C:\\Users\\*\\.ssh\\**")).toBe("C:\\USERS\\*\\.SSH\\**");
    expect(pat("**\\*.pem")).toBe("**\\*.PEM");
    expect(pat("?:\\Windows\\**\\**\\x")).toBe("?:\\WINDOWS\\**\\X");
    expect(pat("C:\\a\\..\\b")).toMatch(/'\.\.' in a pattern/);
    expect(pat("C:\\a\\b:s")).toMatch(/alternate data stream/);
    expect(pat("relative")).toMatch(/relative path/);
  });
});
