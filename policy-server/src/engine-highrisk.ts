/**
 * Built-in high-risk locations with their MITRE ATT&CK techniques. A write, create, delete or
 * rename there that policy would allow (or audit) is denied unless the allowing rule says
 * `allow_high_risk: true`; approve stays approve; every decision on such a path carries the id.
 * Each entry covers the key (or folder) and everything under it. `HKU\*` stands for every user's
 * hive, so HKCU of any session is covered; WOW64 views and control sets are folded by
 * canonicalisation (path-registry.ts). When entries nest, the longest pattern names the technique.
 */
import type { Kind } from "./path-types.js";

export interface HighRiskEntry {
  kind: Kind;
  pattern: string;
  technique: string;
  name: string;
}

const CV = "SOFTWARE\\Microsoft\\Windows\\CurrentVersion";
const NTCV = "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion";
const CCS = "HKLM\\SYSTEM\\CurrentControlSet";

function both(rel: string, technique: string, name: string): HighRiskEntry[] {
  return [
    { kind: "registry", pattern: `HKLM\\${rel}`, technique, name },
    { kind: "registry", pattern: `HKU\\*\\${rel}`, technique, name },
  ];
}

function classes(rel: string, technique: string, name: string): HighRiskEntry[] {
  return [
    { kind: "registry", pattern: `HKLM\\SOFTWARE\\Classes\\${rel}`, technique, name },
    { kind: "registry", pattern: `HKU\\*_Classes\\${rel}`, technique, name },
  ];
}

export const HIGH_RISK: readonly HighRiskEntry[] = [
  // Seeds' list.
  ...both(`${CV}\\Run*`, "T1547.001", "Registry Run Keys"), // Run, RunOnce, RunOnceEx, RunServices*
  ...both(`${NTCV}\\Winlogon`, "T1547.004", "Winlogon Helper DLL"),
  { kind: "registry", pattern: `${CCS}\\Services`, technique: "T1543.003", name: "Windows Service" },
  {
    kind: "registry",
    pattern: "HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows Defender",
    technique: "T1562.001",
    name: "Disable or Modify Tools (Defender policy)",
  },
  {
    kind: "registry",
    pattern: `${CCS}\\Control\\Lsa`,
    technique: "T1003",
    name: "OS Credential Dumping (LSA)",
  },
  // Completed.
  ...both(`${CV}\\Policies\\Explorer\\Run`, "T1547.001", "Registry Run Keys (policy)"),
  ...both(`${CV}\\Explorer\\Shell Folders`, "T1547.001", "Startup folder location"),
  ...both(`${CV}\\Explorer\\User Shell Folders`, "T1547.001", "Startup folder location"),
  {
    kind: "registry",
    pattern: `HKLM\\${NTCV}\\Image File Execution Options`,
    technique: "T1546.012",
    name: "Image File Execution Options Injection",
  },
  {
    kind: "registry",
    pattern: `HKLM\\${NTCV}\\SilentProcessExit`,
    technique: "T1546.012",
    name: "Image File Execution Options Injection (SilentProcessExit)",
  },
  {
    kind: "registry",
    pattern: "HKLM\\SOFTWARE\\Microsoft\\Windows Defender",
    technique: "T1562.001",
    name: "Disable or Modify Tools (Defender settings, exclusions)",
  },
  {
    kind: "registry",
    pattern: `${CCS}\\Control\\Session Manager`,
    technique: "T1547.001",
    name: "Boot or Logon Autostart (BootExecute, PendingFileRenameOperations)",
  },
  {
    kind: "registry",
    pattern: `${CCS}\\Control\\Session Manager\\KnownDLLs`,
    technique: "T1574.001",
    name: "DLL Search Order Hijacking (KnownDLLs)",
  },
  {
    kind: "registry",
    pattern: `${CCS}\\Control\\Session Manager\\AppCertDLLs`,
    technique: "T1546.009",
    name: "AppCert DLLs",
  },
  ...both(`${NTCV}\\Windows`, "T1546.010", "AppInit DLLs"), // AppInit_DLLs, LoadAppInit_DLLs, Load, Run
  {
    kind: "registry",
    pattern: `HKLM\\${NTCV}\\Schedule\\TaskCache`,
    technique: "T1053.005",
    name: "Scheduled Task",
  },
  ...classes("CLSID", "T1546.015", "Component Object Model Hijacking (CLSID, InprocServer32)"),
  ...classes("ms-settings", "T1548.002", "Bypass User Account Control (ms-settings handler)"),
  ...classes("mscfile\\shell", "T1548.002", "Bypass User Account Control (mscfile handler)"),
  ...classes("Folder\\shell", "T1548.002", "Bypass User Account Control (Folder handler)"),
  ...classes("exefile\\shell", "T1546.001", "Change Default File Association (exefile)"),
  {
    kind: "registry",
    pattern: `${CCS}\\Services\\SharedAccess\\Parameters\\FirewallPolicy`,
    technique: "T1562.004",
    name: "Disable or Modify System Firewall",
  },
  {
    kind: "registry",
    pattern: "HKLM\\SOFTWARE\\Policies\\Microsoft\\WindowsFirewall",
    technique: "T1562.004",
    name: "Disable or Modify System Firewall (policy)",
  },
  { kind: "registry", pattern: "HKLM\\SECURITY", technique: "T1003.004", name: "LSA Secrets" },
  { kind: "registry", pattern: "HKLM\\SAM", technique: "T1003.002", name: "Security Account Manager" },
  {
    kind: "registry",
    pattern: `${CCS}\\Control\\Terminal Server`,
    technique: "T1021.001",
    name: "Remote Desktop Protocol (Terminal Server settings)",
  },
  {
    kind: "registry",
    pattern: `${CCS}\\Services\\TermService\\Parameters`,
    technique: "T1505.005",
    name: "Terminal Services DLL",
  },
  {
    kind: "registry",
    pattern: `${CCS}\\Control\\Print\\Monitors`,
    technique: "T1547.010",
    name: "Port Monitors",
  },
  {
    kind: "registry",
    pattern: "HKLM\\SOFTWARE\\Microsoft\\Active Setup\\Installed Components",
    technique: "T1547.014",
    name: "Active Setup",
  },
  {
    kind: "registry",
    pattern: "HKLM\\SOFTWARE\\Microsoft\\NetSh",
    technique: "T1546.007",
    name: "Netsh Helper DLL",
  },
  ...both("SOFTWARE\\Microsoft\\Command Processor", "T1546", "Command Processor AutoRun"),
  // File locations with the same meaning.
  {
    kind: "file",
    pattern: "**\\AppData\\Roaming\\Microsoft\\Windows\\Start Menu\\Programs\\Startup",
    technique: "T1547.001",
    name: "Startup Folder",
  },
  {
    kind: "file",
    pattern: "?:\\ProgramData\\Microsoft\\Windows\\Start Menu\\Programs\\StartUp",
    technique: "T1547.001",
    name: "Startup Folder (all users)",
  },
  {
    kind: "file",
    pattern: "?:\\Windows\\System32\\Tasks",
    technique: "T1053.005",
    name: "Scheduled Task files",
  },
];
