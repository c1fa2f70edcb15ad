// The kernel/user wire contract, as TypeScript sees driver/inc/protocol.h.
//
// Constants and struct layouts here are NOT a second source of truth: codec-conformance.test.ts
// compiles a C program from this table against protocol.h and requires every constant, every
// struct size and every field offset to equal what gcc (and, by static assertion, mingw-w64) say.

export const PROTOCOL_VERSION = 1;
export const CONNECT_MAGIC = 0x48534741;
export const PORT_NAME = "\\AgentshPort";
export const MAX_STRING_CHARS = 32767;
export const MAX_MESSAGE_SIZE = 256 * 1024;
export const MAX_EXCLUDED_PIDS = 64;
/** FILTER_MESSAGE_HEADER and FILTER_REPLY_HEADER are both 16 bytes on x64. */
export const PORT_HEADER_SIZE = 16;
/** The FilterGetMessage buffer that holds any message (AGENTSH_PORT_BUFFER_SIZE). */
export const PORT_BUFFER_SIZE = PORT_HEADER_SIZE + MAX_MESSAGE_SIZE;

export const MsgType = {
  POLICY_CHECK_FILE: 1,
  POLICY_CHECK_REGISTRY: 2,
  PROCESS_CREATED: 3,
  PROCESS_TERMINATED: 4,
  AUDIT_EVENT: 5,
  DECISION_EVENT: 6,
  REGISTER_SESSION: 100,
  UNREGISTER_SESSION: 101,
  UPDATE_CACHE: 102,
  SHUTDOWN: 103,
  SET_CONFIG: 104,
  GET_METRICS: 105,
  METRICS_REPLY: 106,
  EXCLUDE_PROCESS: 107,
  PING: 108,
  PONG: 109,
  POLICY_RESPONSE: 110,
  GET_DECISION_COUNTS: 111,
  DECISION_COUNTS_REPLY: 112,
} as const;
export type MsgType = (typeof MsgType)[keyof typeof MsgType];

export const Decision = { ALLOW: 0, DENY: 1, PENDING: 2 } as const;
export const FailMode = { OPEN: 0, CLOSED: 1 } as const;
export const Kind = { ANY: 0, FILE: 1, REGISTRY: 2 } as const;
export const FileOp = { CREATE: 1, READ: 2, WRITE: 3, DELETE: 4, RENAME: 5, LINK: 6 } as const;
export const RegOp = {
  CREATE_KEY: 1,
  OPEN_KEY: 2,
  SET_VALUE: 3,
  DELETE_KEY: 4,
  DELETE_VALUE: 5,
  RENAME_KEY: 6,
  QUERY_VALUE: 7,
} as const;
export const FileReqFlag = { DIRECTORY: 0x1, DELETE_ON_CLOSE: 0x2, REPLACE_IF_EXISTS: 0x4 } as const;
export const CacheScope = { ALL: 0, SESSION: 1, PATH_PREFIX: 2 } as const;
export const ExcludeAction = { ADD: 0, REMOVE: 1, REPLACE: 2 } as const;
export const FailState = { NORMAL: 0, FAILING: 1 } as const;
export const Ttl = { NO_CACHE: 0, DEFAULT: 0xffffffff } as const;
/** AGENTSH_DECISION_EVENT.Source: how the driver decided without asking. */
export const DecisionEventSource = { CACHE: 1, FAIL_MODE: 2 } as const;
/** AGENTSH_DECISION_EVENT.Reason. */
export const DecisionReason = {
  CACHED: 1,
  COLLAPSED: 2,
  NO_CLIENT: 3,
  FAILING: 4,
  QUERY_FAILED: 5,
  WAIT_TIMEOUT: 6,
  UNDECIDABLE: 7,
} as const;
/** AGENTSH_DECISION_COUNTS: the most entries a reply has (2 sources x 3 kinds x 8 operations x 2 decisions). */
export const DECISION_COUNT_SLOTS = 96;
/** AGENTSH_DECISION_SLOT: where (source, kind, operation, decision) is counted; replies list slots in order. */
export const decisionSlot = (e: {
  source: number;
  kind: number;
  operation: number;
  decision: number;
}): number => (((e.source - 1) * 3 + e.kind) * 8 + e.operation) * 2 + e.decision;

/**
 * What is wrong with a DECISION_COUNTS_REPLY's entries, or undefined: each has Source 1..2, Kind
 * <= 2, Operation < 8, Decision 0..1 and a count, and their slots strictly increase.
 */
export function decisionCountsProblem(
  entries: ReadonlyArray<{
    source: number;
    kind: number;
    operation: number;
    decision: number;
    count: bigint;
  }>,
): string | undefined {
  let last = -1;
  for (const [i, e] of entries.entries()) {
    if (e.source < 1 || e.source > 2 || e.kind > 2 || e.operation > 7 || e.decision > 1)
      return `entry ${i}: unknown Source ${e.source}, Kind ${e.kind}, Operation ${e.operation} or Decision ${e.decision}`;
    if (e.count === 0n) return `entry ${i}: Count 0`;
    const slot = decisionSlot(e);
    if (slot <= last) return `entry ${i}: slot ${slot} after slot ${last}`;
    last = slot;
  }
  return undefined;
}

/** The output buffer GET_DECISION_COUNTS needs: the reply with every slot (24 + 24 * 96 bytes). */
export const DECISION_COUNTS_MAX_SIZE = 24 + 24 * DECISION_COUNT_SLOTS;
/** Decision events the driver queues a second at most (AGENTSH_DECISION_EVENTS_PER_SECOND). */
export const DECISION_EVENTS_PER_SECOND = 1000;

/** The seeds' ranges and defaults (plus CacheMaxTTLMs and ProbeIntervalMs). */
/** AGENTSH_CONFIG.Flags. */
export const ConfigFlag = {
  /** MSG_AUDIT_EVENT with the outcome of every filtered registry operation (off by default). */
  AUDIT_RESULTS: 0x1,
  /** MSG_DECISION_EVENT for every decision the driver makes alone that is not a plain allowed cache
   * hit (a deny from its cache, every fail-mode answer): without them these have no audit record. */
  DECISION_EVENTS: 0x2,
} as const;

export const ConfigLimits = {
  PolicyQueryTimeoutMs: { min: 100, max: 60000, default: 5000 },
  MaxConsecutiveFailures: { min: 1, max: 1000, default: 10 },
  CacheMaxEntries: { min: 100, max: 100000, default: 4096 },
  CacheDefaultTTLMs: { min: 100, max: 3600000, default: 5000 },
  CacheMaxTTLMs: { min: 100, max: 3600000, default: 3600000 },
  ProbeIntervalMs: { min: 100, max: 60000, default: 1000 },
} as const;

/**
 * C constants and the value TypeScript uses for each; the conformance test prints every name with
 * the C compiler and compares.
 */
export const C_CONSTANTS: Record<string, number> = {
  AGENTSH_PROTOCOL_VERSION: PROTOCOL_VERSION,
  AGENTSH_CONNECT_MAGIC: CONNECT_MAGIC,
  AGENTSH_MAX_STRING_CHARS: MAX_STRING_CHARS,
  AGENTSH_MAX_MESSAGE_SIZE: MAX_MESSAGE_SIZE,
  AGENTSH_MAX_EXCLUDED_PIDS: MAX_EXCLUDED_PIDS,
  AGENTSH_PORT_BUFFER_SIZE: PORT_BUFFER_SIZE,
  ...prefixed("MSG_", MsgType),
  ...prefixed("DECISION_", Decision),
  ...prefixed("FAIL_MODE_", FailMode),
  ...prefixed("AGENTSH_KIND_", Kind),
  ...prefixed("FILE_OP_", FileOp),
  ...prefixed("REG_OP_", RegOp),
  ...prefixed("FILE_REQ_FLAG_", FileReqFlag),
  ...prefixed("CACHE_SCOPE_", CacheScope),
  ...prefixed("EXCLUDE_ACTION_", ExcludeAction),
  ...prefixed("FAIL_STATE_", FailState),
  AGENTSH_TTL_NO_CACHE: Ttl.NO_CACHE,
  AGENTSH_TTL_DEFAULT: Ttl.DEFAULT,
  AGENTSH_CONFIG_TIMEOUT_MIN_MS: ConfigLimits.PolicyQueryTimeoutMs.min,
  AGENTSH_CONFIG_TIMEOUT_MAX_MS: ConfigLimits.PolicyQueryTimeoutMs.max,
  AGENTSH_CONFIG_TIMEOUT_DEFAULT_MS: ConfigLimits.PolicyQueryTimeoutMs.default,
  AGENTSH_CONFIG_MAX_FAILURES_MIN: ConfigLimits.MaxConsecutiveFailures.min,
  AGENTSH_CONFIG_MAX_FAILURES_MAX: ConfigLimits.MaxConsecutiveFailures.max,
  AGENTSH_CONFIG_MAX_FAILURES_DEFAULT: ConfigLimits.MaxConsecutiveFailures.default,
  AGENTSH_CONFIG_CACHE_ENTRIES_MIN: ConfigLimits.CacheMaxEntries.min,
  AGENTSH_CONFIG_CACHE_ENTRIES_MAX: ConfigLimits.CacheMaxEntries.max,
  AGENTSH_CONFIG_CACHE_ENTRIES_DEFAULT: ConfigLimits.CacheMaxEntries.default,
  AGENTSH_CONFIG_CACHE_TTL_MIN_MS: ConfigLimits.CacheDefaultTTLMs.min,
  AGENTSH_CONFIG_CACHE_TTL_MAX_MS: ConfigLimits.CacheDefaultTTLMs.max,
  AGENTSH_CONFIG_CACHE_TTL_DEFAULT_MS: ConfigLimits.CacheDefaultTTLMs.default,
  AGENTSH_CONFIG_CACHE_MAX_TTL_DEFAULT_MS: ConfigLimits.CacheMaxTTLMs.default,
  AGENTSH_CONFIG_PROBE_MIN_MS: ConfigLimits.ProbeIntervalMs.min,
  AGENTSH_CONFIG_PROBE_MAX_MS: ConfigLimits.ProbeIntervalMs.max,
  AGENTSH_CONFIG_PROBE_DEFAULT_MS: ConfigLimits.ProbeIntervalMs.default,
  AGENTSH_CONFIG_DEFAULT_FAIL_MODE: FailMode.OPEN,
  AGENTSH_CONFIG_FLAG_AUDIT_RESULTS: ConfigFlag.AUDIT_RESULTS,
  AGENTSH_CONFIG_FLAG_DECISION_EVENTS: ConfigFlag.DECISION_EVENTS,
  AGENTSH_CONFIG_FLAGS_VALID: ConfigFlag.AUDIT_RESULTS | ConfigFlag.DECISION_EVENTS,
  AGENTSH_CONFIG_DEFAULT_FLAGS: 0,
  AGENTSH_DECISION_EVENTS_PER_SECOND: DECISION_EVENTS_PER_SECOND,
  AGENTSH_DECISION_COUNT_SLOTS: DECISION_COUNT_SLOTS,
  AGENTSH_DECISION_COUNTS_MAX_SIZE: DECISION_COUNTS_MAX_SIZE,
  AGENTSH_PORT_OUTPUT_SIZE: DECISION_COUNTS_MAX_SIZE,
  ...prefixed("DECISION_SOURCE_", DecisionEventSource),
  ...prefixed("DECISION_REASON_", DecisionReason),
};

function prefixed(prefix: string, table: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(table).map(([k, v]) => [prefix + k, v]));
}

/** Field kinds and their sizes on the wire. A string is an AGENTSH_STRING {Offset, Length}. */
export type FieldKind = "u32" | "i32" | "u64" | "string" | "header";
export const FIELD_SIZE: Record<FieldKind, number> = { u32: 4, i32: 4, u64: 8, string: 8, header: 16 };

export interface FieldLayout {
  /** C field name in protocol.h. */
  readonly c: string;
  /** Property name in the decoded TypeScript object. */
  readonly ts: string;
  readonly kind: FieldKind;
  /** Byte offset, computed by tiling the fields in order (checked against the C compiler). */
  readonly offset: number;
}

export interface StructLayout {
  /** C typedef name in protocol.h. */
  readonly c: string;
  readonly size: number;
  readonly fields: readonly FieldLayout[];
}

type FieldSpec = readonly [string, FieldKind];
/** A layout that remembers its field list in its type, so message types derive from it. */
export interface TypedLayout<F extends readonly FieldSpec[]> extends StructLayout {
  readonly spec?: F;
}
interface KindValue {
  u32: number;
  i32: number;
  u64: bigint;
  string: string;
  header: never;
}
/** The decoded object of a layout: one property per field (lower camel case), header excluded. */
export type FieldsOf<L> =
  L extends TypedLayout<infer F>
    ? { [E in F[number] as E[0] extends "Header" ? never : Uncapitalize<E[0]>]: KindValue[E[1]] }
    : never;

function struct<const F extends readonly FieldSpec[]>(c: string, fields: F): TypedLayout<F> {
  let offset = 0;
  const out: FieldLayout[] = [];
  for (const [name, kind] of fields) {
    const size = FIELD_SIZE[kind];
    if (offset % Math.min(size, 8) !== 0) throw new Error(`${c}.${name}: misaligned at ${offset}`);
    out.push({ c: name, ts: name.charAt(0).toLowerCase() + name.slice(1), kind, offset });
    offset += size;
  }
  return { c, size: offset, fields: out };
}

const H = ["Header", "header"] as const;

export const Layouts = {
  header: struct("AGENTSH_MESSAGE_HEADER", [
    ["Type", "u32"],
    ["Size", "u32"],
    ["RequestId", "u64"],
  ]),
  string: struct("AGENTSH_STRING", [
    ["Offset", "u32"],
    ["Length", "u32"],
  ]),
  connectContext: struct("AGENTSH_CONNECT_CONTEXT", [
    ["Magic", "u32"],
    ["ProtocolVersion", "u32"],
    ["ClientProcessId", "u32"],
    ["Flags", "u32"],
  ]),
  fileRequest: struct("AGENTSH_FILE_REQUEST", [
    H,
    ["SessionToken", "u64"],
    ["ProcessId", "u32"],
    ["ThreadId", "u32"],
    ["Operation", "u32"],
    ["CreateDisposition", "u32"],
    ["DesiredAccess", "u32"],
    ["Flags", "u32"],
    ["Path", "string"],
    ["RenameDest", "string"],
    ["Volume", "string"],
  ]),
  registryRequest: struct("AGENTSH_REGISTRY_REQUEST", [
    H,
    ["SessionToken", "u64"],
    ["ProcessId", "u32"],
    ["ThreadId", "u32"],
    ["Operation", "u32"],
    ["ValueType", "u32"],
    ["DataSize", "u32"],
    ["Reserved", "u32"],
    ["KeyPath", "string"],
    ["ValueName", "string"],
    ["NewName", "string"],
  ]),
  processEvent: struct("AGENTSH_PROCESS_EVENT", [
    H,
    ["SessionToken", "u64"],
    ["ProcessId", "u32"],
    ["CreatorProcessId", "u32"],
    ["ParentProcessId", "u32"],
    ["ExitStatus", "i32"],
    ["ImagePath", "string"],
  ]),
  auditEvent: struct("AGENTSH_AUDIT_EVENT", [
    H,
    ["SessionToken", "u64"],
    ["ProcessId", "u32"],
    ["Kind", "u32"],
    ["Operation", "u32"],
    ["Status", "i32"],
    ["Path", "string"],
    ["ValueName", "string"],
  ]),
  decisionEvent: struct("AGENTSH_DECISION_EVENT", [
    H,
    ["SessionToken", "u64"],
    ["ProcessId", "u32"],
    ["ThreadId", "u32"],
    ["Kind", "u32"],
    ["Operation", "u32"],
    ["Decision", "u32"],
    ["Source", "u32"],
    ["Reason", "u32"],
    ["QueryStatus", "i32"],
    ["Suppressed", "u32"],
    ["Reserved", "u32"],
    ["Path", "string"],
    ["String1", "string"],
    ["String2", "string"],
  ]),
  policyResponse: struct("AGENTSH_POLICY_RESPONSE", [
    H,
    ["Decision", "u32"],
    ["CacheTTLMs", "u32"],
    ["Flags", "u32"],
    ["Reserved", "u32"],
  ]),
  sessionRegister: struct("AGENTSH_SESSION_REGISTER", [
    H,
    ["SessionToken", "u64"],
    ["RootProcessId", "u32"],
    ["Flags", "u32"],
    ["WorkspacePath", "string"],
  ]),
  sessionUnregister: struct("AGENTSH_SESSION_UNREGISTER", [H, ["SessionToken", "u64"]]),
  cacheUpdate: struct("AGENTSH_CACHE_UPDATE", [
    H,
    ["Scope", "u32"],
    ["Kind", "u32"],
    ["SessionToken", "u64"],
    ["PathPrefix", "string"],
  ]),
  config: struct("AGENTSH_CONFIG", [
    H,
    ["FailMode", "u32"],
    ["PolicyQueryTimeoutMs", "u32"],
    ["MaxConsecutiveFailures", "u32"],
    ["CacheMaxEntries", "u32"],
    ["CacheDefaultTTLMs", "u32"],
    ["CacheMaxTTLMs", "u32"],
    ["ProbeIntervalMs", "u32"],
    ["Flags", "u32"],
  ]),
  metrics: struct("AGENTSH_METRICS", [
    H,
    ["CacheHitCount", "u64"],
    ["CacheMissCount", "u64"],
    ["CacheEvictionCount", "u64"],
    ["CacheExpiredCount", "u64"],
    ["CacheCollapsedCount", "u64"],
    ["FilePolicyQueries", "u64"],
    ["RegistryPolicyQueries", "u64"],
    ["PolicyQueryTimeouts", "u64"],
    ["PolicyQueryFailures", "u64"],
    ["AllowDecisions", "u64"],
    ["DenyDecisions", "u64"],
    ["PendingDecisions", "u64"],
    ["FailModeDecisions", "u64"],
    ["FailModeEntries", "u64"],
    ["ProbeCount", "u64"],
    ["ExcludedOperations", "u64"],
    ["CacheEntryCount", "u32"],
    ["CacheCapacity", "u32"],
    ["ActiveSessions", "u32"],
    ["TrackedProcesses", "u32"],
    ["ExcludedProcesses", "u32"],
    ["ConsecutiveFailures", "u32"],
    ["FailState", "u32"],
    ["FailMode", "u32"],
    ["ClientConnected", "u32"],
    ["Reserved", "u32"],
  ]),
  excludeProcess: struct("AGENTSH_EXCLUDE_PROCESS", [H, ["Action", "u32"], ["Count", "u32"]]),
  decisionCounts: struct("AGENTSH_DECISION_COUNTS", [H, ["Count", "u32"], ["Reserved", "u32"]]),
  decisionCount: struct("AGENTSH_DECISION_COUNT", [
    ["Source", "u32"],
    ["Kind", "u32"],
    ["Operation", "u32"],
    ["Decision", "u32"],
    ["Count", "u64"],
  ]),
  ping: struct("AGENTSH_PING", [H, ["Timestamp", "u64"]]),
  pong: struct("AGENTSH_PONG", [
    H,
    ["ProtocolVersion", "u32"],
    ["ClientProcessId", "u32"],
    ["Timestamp", "u64"],
  ]),
} as const satisfies Record<string, StructLayout>;

/** SHUTDOWN, GET_METRICS and GET_DECISION_COUNTS: the header alone (same C struct as Layouts.header, no body fields). */
export const HEADER_ONLY = struct("AGENTSH_MESSAGE_HEADER", [H]);

/** Port framing structs (fltUserStructures.h), checked against the Windows headers too. */
export const PortLayouts = {
  messageHeader: { c: "FILTER_MESSAGE_HEADER", size: 16, fields: { ReplyLength: 0, MessageId: 8 } },
  replyHeader: { c: "FILTER_REPLY_HEADER", size: 16, fields: { Status: 0, MessageId: 8 } },
  replyMessage: { c: "AGENTSH_REPLY_MESSAGE", size: 48, fields: { ReplyHeader: 0, Response: 16 } },
} as const;

/** Which struct each message type is carried in. */
export const LAYOUT_OF_TYPE: Record<MsgType, StructLayout> = {
  [MsgType.POLICY_CHECK_FILE]: Layouts.fileRequest,
  [MsgType.POLICY_CHECK_REGISTRY]: Layouts.registryRequest,
  [MsgType.PROCESS_CREATED]: Layouts.processEvent,
  [MsgType.PROCESS_TERMINATED]: Layouts.processEvent,
  [MsgType.AUDIT_EVENT]: Layouts.auditEvent,
  [MsgType.DECISION_EVENT]: Layouts.decisionEvent,
  [MsgType.REGISTER_SESSION]: Layouts.sessionRegister,
  [MsgType.UNREGISTER_SESSION]: Layouts.sessionUnregister,
  [MsgType.UPDATE_CACHE]: Layouts.cacheUpdate,
  [MsgType.SHUTDOWN]: HEADER_ONLY,
  [MsgType.SET_CONFIG]: Layouts.config,
  [MsgType.GET_METRICS]: HEADER_ONLY,
  [MsgType.METRICS_REPLY]: Layouts.metrics,
  [MsgType.EXCLUDE_PROCESS]: Layouts.excludeProcess,
  [MsgType.PING]: Layouts.ping,
  [MsgType.PONG]: Layouts.pong,
  [MsgType.POLICY_RESPONSE]: Layouts.policyResponse,
  [MsgType.GET_DECISION_COUNTS]: HEADER_ONLY,
  [MsgType.DECISION_COUNTS_REPLY]: Layouts.decisionCounts,
};

/**
 * The messages whose fixed part is followed by `Count` items (no flexible array member in C, so
 * sizeof is the fixed part): Size == fixed + Count * item size, Count <= max. `ts` names the array
 * in the decoded object (Count is not a property); `item` is a u32 or a struct of u32/u64 fields.
 */
export interface Trailing {
  readonly ts: string;
  readonly item: "u32" | StructLayout;
  readonly max: number;
  /** The C constant of `max`. */
  readonly cMax: string;
  /** What is wrong with the items as a whole (values, order), or undefined. */
  readonly problem?: (items: readonly never[]) => string | undefined;
}
export const TRAILING_OF_TYPE: Partial<Record<MsgType, Trailing>> = {
  [MsgType.EXCLUDE_PROCESS]: {
    ts: "processIds",
    item: "u32",
    max: MAX_EXCLUDED_PIDS,
    cMax: "AGENTSH_MAX_EXCLUDED_PIDS",
  },
  [MsgType.DECISION_COUNTS_REPLY]: {
    ts: "entries",
    item: Layouts.decisionCount,
    max: DECISION_COUNT_SLOTS,
    cMax: "AGENTSH_DECISION_COUNT_SLOTS",
    problem: decisionCountsProblem,
  },
};

/** The bytes of one trailing item. */
export const itemSize = (t: Trailing): number => (t.item === "u32" ? 4 : t.item.size);
