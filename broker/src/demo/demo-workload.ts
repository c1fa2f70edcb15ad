// The demo's agent: a coding agent building a C project inside its workspace. A process tree
// (agent -> cmd -> msbuild -> cl/link), compilers reading SDK headers and sources and writing
// objects, plus the things an agent should not do: read SSH keys and cloud credentials, add a Run
// key, change a service, drop a DLL into System32.
import type { SimControl } from "../../../test/e2e/harness.js";

export const SESSION = {
  token: 0x5eed_0001n,
  rootPid: 4100,
  workspace: "C:\\work\\repo",
  userProfile: "C:\\Users\\dev",
  userSid: "S-1-5-21-1000000000-1000000000-1000000000-1001",
  agent: "demo-agent",
};

const SDK = "C:\\Program Files (x86)\\Windows Kits\\10\\Include\\10.0.22621.0";
const HEADERS = [
  ...[
    "windows.h",
    "winbase.h",
    "winnt.h",
    "winuser.h",
    "fileapi.h",
    "processthreadsapi.h",
    "synchapi.h",
    "winsock2.h",
  ].map((h) => `${SDK}\\um\\${h}`),
  ...["stdio.h", "stdlib.h", "string.h", "stdint.h", "errno.h", "time.h", "math.h", "ctype.h"].map(
    (h) => `${SDK}\\ucrt\\${h}`,
  ),
  ...Array.from({ length: 48 }, (_, i) => `${SDK}\\shared\\h${i}.h`),
];
const SOURCES = Array.from({ length: 60 }, (_, i) => `C:\\work\\repo\\src\\module${i}.c`);

export interface Op {
  pid: number;
  cmd: "file" | "registry";
  op: string;
  path: string;
  extra?: Record<string, unknown>;
  /** What the demo expects policy to say (for the summary's sanity line). */
  label: string;
}

const PIDS = { agent: 4100, cmd: 4101, msbuild: 4102, cl: [4103, 4104, 4105, 4106], link: 4107 };

/** Starts the process tree through the simulator (children join the session by creator). */
export async function spawnTree(ctl: SimControl): Promise<void> {
  await ctl.spawn(PIDS.cmd, PIDS.agent, "C:\\Windows\\System32\\cmd.exe");
  await ctl.spawn(PIDS.msbuild, PIDS.cmd, "C:\\Program Files\\Microsoft Visual Studio\\MSBuild.exe");
  for (const pid of PIDS.cl)
    await ctl.spawn(pid, PIDS.msbuild, "C:\\Program Files\\Microsoft Visual Studio\\cl.exe");
  await ctl.spawn(PIDS.link, PIDS.msbuild, "C:\\Program Files\\Microsoft Visual Studio\\link.exe");
}

/** An endless, deterministic stream of operations in build-like proportions. */
export function* workload(): Generator<Op> {
  let n = 0;
  let objects = 0;
  for (;;) {
    n++;
    const cl = PIDS.cl[n % PIDS.cl.length]!;
    const r = (n * 2654435761) % 1000; // a cheap deterministic spread
    if (r < 450)
      yield { pid: cl, cmd: "file", op: "read", path: HEADERS[r % HEADERS.length]!, label: "SDK header" };
    else if (r < 650)
      yield { pid: cl, cmd: "file", op: "read", path: SOURCES[r % SOURCES.length]!, label: "source" };
    else if (r < 800) {
      // Each object file is new for a while, then rebuilt: a share of uncached decisions.
      objects = (objects + 1) % 5000;
      yield {
        pid: cl,
        cmd: "file",
        op: "write",
        path: `C:\\work\\repo\\build\\obj\\module${objects}.obj`,
        label: "object",
      };
    } else if (r < 850) {
      yield {
        pid: cl,
        cmd: "file",
        op: "create",
        path: `C:\\Users\\dev\\AppData\\Local\\Temp\\cl-${n % 50}.tmp`,
        label: "temp",
      };
    } else if (r < 900)
      yield {
        pid: PIDS.link,
        cmd: "file",
        op: "write",
        path: "C:\\work\\repo\\build\\app.exe",
        label: "link",
      };
    else if (r < 930) {
      yield {
        pid: PIDS.msbuild,
        cmd: "registry",
        op: "query_value",
        path: "HKLM\\SOFTWARE\\Microsoft\\VisualStudio\\17.0",
        extra: { value: "InstallDir" },
        label: "registry read",
      };
    } else if (r < 950) {
      yield {
        pid: PIDS.agent,
        cmd: "registry",
        op: "set_value",
        path: "HKCU\\SOFTWARE\\agentsh-demo\\settings",
        extra: { value: "lastBuild" },
        label: "app setting",
      };
    } else if (r < 965)
      yield {
        pid: PIDS.agent,
        cmd: "file",
        op: "read",
        path: `C:\\Users\\dev\\.ssh\\id_${n % 2 ? "rsa" : "ed25519"}`,
        label: "credentials",
      };
    else if (r < 975)
      yield {
        pid: PIDS.cmd,
        cmd: "file",
        op: "read",
        path: "C:\\Users\\dev\\.aws\\credentials",
        label: "credentials",
      };
    else if (r < 985) {
      yield {
        pid: PIDS.agent,
        cmd: "registry",
        op: "set_value",
        path: "HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run",
        extra: { value: "updater" },
        label: "Run key",
      };
    } else if (r < 993) {
      yield {
        pid: PIDS.link,
        cmd: "file",
        op: "rename",
        path: "C:\\work\\repo\\build\\app.dll",
        extra: { dest: "C:\\Windows\\System32\\app.dll" },
        label: "System32",
      };
    } else {
      yield {
        pid: PIDS.agent,
        cmd: "registry",
        op: "set_value",
        path: `HKLM\\SYSTEM\\CurrentControlSet\\Services\\${n % 2 ? "AgentHelper" : "Spooler"}`,
        extra: { value: "ImagePath" },
        label: "service change",
      };
    }
  }
}
