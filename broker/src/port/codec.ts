// Encoder and decoder for the kernel/user messages of driver/inc/protocol.h, and the Windows port
// framing around them (FILTER_MESSAGE_HEADER before a driver message, FILTER_REPLY_HEADER before a
// reply). Decoding never throws: it returns a Result whose error is a CodecError naming the rule
// that was broken. Encoding throws a CodecError ("bad_value") for values that do not fit.

import { CodecError, type Result } from "./codec-error.js";
import {
  type FieldsOf,
  itemSize,
  LAYOUT_OF_TYPE,
  Layouts,
  MAX_MESSAGE_SIZE,
  MAX_STRING_CHARS,
  MsgType,
  PORT_HEADER_SIZE,
  type StructLayout,
  TRAILING_OF_TYPE,
} from "./protocol.js";

type L = typeof Layouts;
interface Base<T extends MsgType> {
  type: T;
  requestId: bigint;
}
export type FileRequest = Base<typeof MsgType.POLICY_CHECK_FILE> & FieldsOf<L["fileRequest"]>;
export type RegistryRequest = Base<typeof MsgType.POLICY_CHECK_REGISTRY> & FieldsOf<L["registryRequest"]>;
export type ProcessEvent = Base<typeof MsgType.PROCESS_CREATED | typeof MsgType.PROCESS_TERMINATED> &
  FieldsOf<L["processEvent"]>;
export type AuditEvent = Base<typeof MsgType.AUDIT_EVENT> & FieldsOf<L["auditEvent"]>;
export type DecisionEvent = Base<typeof MsgType.DECISION_EVENT> & FieldsOf<L["decisionEvent"]>;
export type PolicyResponse = Base<typeof MsgType.POLICY_RESPONSE> & FieldsOf<L["policyResponse"]>;
export type SessionRegister = Base<typeof MsgType.REGISTER_SESSION> & FieldsOf<L["sessionRegister"]>;
export type SessionUnregister = Base<typeof MsgType.UNREGISTER_SESSION> & FieldsOf<L["sessionUnregister"]>;
export type CacheUpdate = Base<typeof MsgType.UPDATE_CACHE> & FieldsOf<L["cacheUpdate"]>;
export type Shutdown = Base<typeof MsgType.SHUTDOWN>;
export type SetConfig = Base<typeof MsgType.SET_CONFIG> & FieldsOf<L["config"]>;
export type GetMetrics = Base<typeof MsgType.GET_METRICS>;
export type MetricsReply = Base<typeof MsgType.METRICS_REPLY> & FieldsOf<L["metrics"]>;
/** Count is not a property: it is processIds.length. */
export type ExcludeProcess = Base<typeof MsgType.EXCLUDE_PROCESS> & {
  action: number;
  processIds: number[];
};
export type GetDecisionCounts = Base<typeof MsgType.GET_DECISION_COUNTS>;
/** One (source, kind, operation, decision) the driver counted, and its count. */
export type DecisionCount = FieldsOf<L["decisionCount"]>;
/** Count is not a property: it is entries.length. */
export type DecisionCountsReply = Base<typeof MsgType.DECISION_COUNTS_REPLY> & {
  reserved: number;
  entries: DecisionCount[];
};
export type Ping = Base<typeof MsgType.PING> & FieldsOf<L["ping"]>;
export type Pong = Base<typeof MsgType.PONG> & FieldsOf<L["pong"]>;

export type Message =
  | FileRequest
  | RegistryRequest
  | ProcessEvent
  | AuditEvent
  | DecisionEvent
  | PolicyResponse
  | SessionRegister
  | SessionUnregister
  | CacheUpdate
  | Shutdown
  | SetConfig
  | GetMetrics
  | MetricsReply
  | ExcludeProcess
  | GetDecisionCounts
  | DecisionCountsReply
  | Ping
  | Pong;

/** A message taken from a FilterGetMessage buffer. */
export interface PortMessage {
  /** FILTER_MESSAGE_HEADER.ReplyLength: 0 for notifications that expect no reply. */
  replyLength: number;
  /** FILTER_MESSAGE_HEADER.MessageId, to be echoed in FILTER_REPLY_HEADER. */
  messageId: bigint;
  message: Message;
}

const U32_MAX = 0xffffffff;
const U64_MAX = (1n << 64n) - 1n;

function isMsgType(t: number): t is MsgType {
  return Object.hasOwn(LAYOUT_OF_TYPE, t);
}

// ---------------------------------------------------------------------------------------------
// Encode
// ---------------------------------------------------------------------------------------------

function badValue(what: string, why: string): CodecError {
  return new CodecError("bad_value", `${what}: ${why}`);
}

function checkU32(what: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > U32_MAX) {
    throw badValue(what, `expected an integer 0..${U32_MAX}, got ${String(v)}`);
  }
  return v;
}

function checkI32(what: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
    throw badValue(what, `expected a 32-bit signed integer, got ${String(v)}`);
  }
  return v;
}

function checkU64(what: string, v: unknown): bigint {
  if (typeof v !== "bigint" || v < 0n || v > U64_MAX) {
    throw badValue(what, `expected a bigint 0..2^64-1, got ${String(v)}`);
  }
  return v;
}

function checkString(what: string, v: unknown): string {
  if (typeof v !== "string") throw badValue(what, `expected a string, got ${typeof v}`);
  if (v.length > MAX_STRING_CHARS) throw badValue(what, `${v.length} code units > ${MAX_STRING_CHARS}`);
  if (!v.isWellFormed()) throw badValue(what, "contains an unpaired surrogate");
  return v;
}

/** Encodes one message (header included) into a new buffer of exactly Header.Size bytes. */
export function encodeMessage(msg: Message): Buffer {
  const type = checkU32("type", msg.type);
  if (!isMsgType(type)) throw new CodecError("unknown_type", `type ${type} is not a message type`);
  const layout = LAYOUT_OF_TYPE[type];
  const values = msg as unknown as Record<string, unknown>;
  const where = (f: string) => `${layout.c}.${f}`;

  let size = layout.size;
  const strings: Array<{ offsetAt: number; text: string }> = [];
  for (const f of layout.fields) {
    if (f.kind === "string")
      strings.push({ offsetAt: f.offset, text: checkString(where(f.c), values[f.ts]) });
  }
  const trailing = TRAILING_OF_TYPE[type];
  let items: unknown[] = [];
  if (trailing) {
    const list = values[trailing.ts];
    if (!Array.isArray(list) || list.length > trailing.max) {
      throw badValue(where(trailing.ts), `expected an array of at most ${trailing.max} items`);
    }
    items = list;
    size += itemSize(trailing) * items.length;
    const problem = trailing.problem?.(items as never[]);
    if (problem) throw badValue(where(trailing.ts), problem);
  }
  for (const s of strings) size += s.text.length ? 2 * (s.text.length + 1) : 0; // empty = {0, 0}, no bytes
  if (size > MAX_MESSAGE_SIZE)
    throw new CodecError("too_large", `${layout.c}: ${size} bytes > ${MAX_MESSAGE_SIZE}`);

  const buf = Buffer.alloc(size);
  buf.writeUInt32LE(type, 0);
  buf.writeUInt32LE(size, 4);
  buf.writeBigUInt64LE(checkU64("requestId", msg.requestId), 8);
  for (const f of layout.fields) {
    const v = values[f.ts];
    if (trailing && f.c === "Count") buf.writeUInt32LE(items.length, f.offset);
    else writeNumber(buf, f, f.offset, v, where);
  }
  let at = layout.size;
  for (const [i, item] of items.entries()) {
    const t = trailing!; // items are only there with a trailing array
    const itemAt = (f: string) => `${where(t.ts)}[${i}]${f ? `.${f}` : ""}`;
    if (t.item === "u32") buf.writeUInt32LE(checkU32(itemAt(""), item), at);
    else {
      if (typeof item !== "object" || item === null) throw badValue(itemAt(""), "expected an object");
      for (const f of t.item.fields)
        writeNumber(buf, f, at + f.offset, (item as Record<string, unknown>)[f.ts], itemAt);
    }
    at += itemSize(t);
  }
  for (const s of strings) {
    if (s.text.length === 0) continue; // absent: {0, 0}
    buf.writeUInt32LE(at, s.offsetAt);
    buf.writeUInt32LE(s.text.length, s.offsetAt + 4);
    at += buf.write(s.text, at, "utf16le") + 2; // + NUL (already zero)
  }
  return buf;
}

/** Writes the number field `f` of value `v` at `at`, checked for its kind. */
function writeNumber(
  buf: Buffer,
  f: { c: string; kind: string },
  at: number,
  v: unknown,
  where: (f: string) => string,
): void {
  if (f.kind === "u32") buf.writeUInt32LE(checkU32(where(f.c), v), at);
  else if (f.kind === "i32") buf.writeInt32LE(checkI32(where(f.c), v), at);
  else if (f.kind === "u64") buf.writeBigUInt64LE(checkU64(where(f.c), v), at);
}

/** FILTER_MESSAGE_HEADER + message: what a FilterGetMessage buffer holds (simulator and tests). */
export function encodePortMessage(messageId: bigint, replyLength: number, msg: Message): Buffer {
  const body = encodeMessage(msg);
  const out = Buffer.alloc(PORT_HEADER_SIZE + body.length);
  out.writeUInt32LE(checkU32("replyLength", replyLength), 0);
  out.writeBigUInt64LE(checkU64("messageId", messageId), 8);
  body.copy(out, PORT_HEADER_SIZE);
  return out;
}

/**
 * FILTER_REPLY_HEADER + AGENTSH_POLICY_RESPONSE: the buffer for FilterReplyMessage, whose size
 * argument must be this buffer's length (16 + 32).
 */
export function encodeReply(messageId: bigint, response: Omit<PolicyResponse, "type">, status = 0): Buffer {
  // Fixed layout, written directly: this is on the path of every uncached decision.
  const size = Layouts.policyResponse.size;
  const out = Buffer.allocUnsafe(PORT_HEADER_SIZE + size);
  out.writeInt32LE(checkI32("status", status), 0);
  out.writeUInt32LE(0, 4);
  out.writeBigUInt64LE(checkU64("messageId", messageId), 8);
  out.writeUInt32LE(MsgType.POLICY_RESPONSE, 16);
  out.writeUInt32LE(size, 20);
  out.writeBigUInt64LE(checkU64("requestId", response.requestId), 24);
  out.writeUInt32LE(checkU32("AGENTSH_POLICY_RESPONSE.Decision", response.decision), 32);
  out.writeUInt32LE(checkU32("AGENTSH_POLICY_RESPONSE.CacheTTLMs", response.cacheTTLMs), 36);
  out.writeUInt32LE(checkU32("AGENTSH_POLICY_RESPONSE.Flags", response.flags), 40);
  out.writeUInt32LE(checkU32("AGENTSH_POLICY_RESPONSE.Reserved", response.reserved), 44);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decode
// ---------------------------------------------------------------------------------------------

function fail<T>(code: CodecError["code"], message: string, type?: number): Result<T> {
  return { ok: false, error: new CodecError(code, message, undefined, type) };
}

/** Decodes an AGENTSH_STRING per the String rules of protocol.h. */
function readString(
  buf: Uint8Array,
  dv: DataView,
  layout: StructLayout,
  field: string,
  at: number,
  size: number,
) {
  const offset = dv.getUint32(at, true);
  const length = dv.getUint32(at + 4, true);
  const what = `${layout.c}.${field}`;
  if (offset === 0 && length === 0) return { ok: true as const, text: "" };
  if (length > MAX_STRING_CHARS)
    return {
      ok: false as const,
      code: "too_large" as const,
      why: `${what}: Length ${length} > ${MAX_STRING_CHARS}`,
    };
  if (offset % 2 !== 0 || offset < layout.size) {
    return {
      ok: false as const,
      code: "bad_string" as const,
      why: `${what}: Offset ${offset} must be even and >= ${layout.size}`,
    };
  }
  const end = offset + 2 * length;
  if (end + 2 > size) {
    return {
      ok: false as const,
      code: "bad_string" as const,
      why: `${what}: [${offset}, ${end + 2}) lies outside Size ${size}`,
    };
  }
  if (dv.getUint16(end, true) !== 0) {
    return {
      ok: false as const,
      code: "missing_terminator" as const,
      why: `${what}: no NUL after ${length} code units`,
    };
  }
  const text = Buffer.from(buf.buffer, buf.byteOffset + offset, 2 * length).toString("utf16le");
  if (!text.isWellFormed()) {
    const at = firstUnpaired(text);
    return {
      ok: false as const,
      code: "invalid_utf16" as const,
      why: `${what}: unpaired surrogate at unit ${at}`,
    };
  }
  return { ok: true as const, text };
}

function firstUnpaired(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i);
    if (u >= 0xd800 && u <= 0xdbff) {
      const n = s.charCodeAt(i + 1);
      if (n >= 0xdc00 && n <= 0xdfff) i++;
      else return i;
    } else if (u >= 0xdc00 && u <= 0xdfff) return i;
  }
  return -1;
}

/** The number of a u32, i32 or u64 field of a trailing item at `at` (the fixed part is read inline). */
function readNumber(dv: DataView, kind: string, at: number): number | bigint {
  if (kind === "u64") return dv.getBigUint64(at, true);
  return kind === "i32" ? dv.getInt32(at, true) : dv.getUint32(at, true);
}

/**
 * Decodes exactly one message. `bytes` must hold Header.Size bytes (see decodeFromCapacity for a
 * buffer that is only known to be at least that large).
 */
export function decodeMessage(bytes: Uint8Array): Result<Message> {
  if (bytes.length < Layouts.header.size) {
    return fail("short_buffer", `${bytes.length} bytes is shorter than the 16-byte message header`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = dv.getUint32(0, true);
  const size = dv.getUint32(4, true);
  if (size !== bytes.length) {
    return fail(
      "size_mismatch",
      `Header.Size ${size} disagrees with the ${bytes.length} bytes received`,
      type,
    );
  }
  if (size > MAX_MESSAGE_SIZE) return fail("too_large", `Header.Size ${size} > ${MAX_MESSAGE_SIZE}`, type);
  if (!isMsgType(type)) return fail("unknown_type", `Header.Type ${type} is not a message type`, type);
  const layout = LAYOUT_OF_TYPE[type];
  if (size < layout.size) {
    return fail("short_buffer", `${layout.c} needs ${layout.size} bytes, Header.Size is ${size}`, type);
  }
  const hasStrings = layout.fields.some((f) => f.kind === "string");
  const trailing = TRAILING_OF_TYPE[type];
  if (!hasStrings && !trailing && size !== layout.size) {
    return fail("size_mismatch", `${layout.c} is fixed-size ${layout.size}, Header.Size is ${size}`, type);
  }

  const out: Record<string, unknown> = { type, requestId: dv.getBigUint64(8, true) };
  for (const f of layout.fields) {
    switch (f.kind) {
      case "u32":
        out[f.ts] = dv.getUint32(f.offset, true);
        break;
      case "i32":
        out[f.ts] = dv.getInt32(f.offset, true);
        break;
      case "u64":
        out[f.ts] = dv.getBigUint64(f.offset, true);
        break;
      case "string": {
        const s = readString(bytes, dv, layout, f.c, f.offset, size);
        if (!s.ok) return fail(s.code, s.why, type);
        out[f.ts] = s.text;
        break;
      }
      case "header":
        break;
    }
  }
  if (trailing) {
    const count = out.count as number;
    delete out.count;
    if (count > trailing.max) return fail("bad_count", `Count ${count} > ${trailing.max}`, type);
    const each = itemSize(trailing);
    if (size !== layout.size + each * count) {
      return fail(
        "bad_count",
        `Count ${count} needs Size ${layout.size + each * count}, Header.Size is ${size}`,
        type,
      );
    }
    const items: unknown[] = [];
    for (let i = 0, at = layout.size; i < count; i++, at += each) {
      if (trailing.item === "u32") {
        items.push(dv.getUint32(at, true));
        continue;
      }
      const item: Record<string, number | bigint> = {};
      for (const f of trailing.item.fields) item[f.ts] = readNumber(dv, f.kind, at + f.offset);
      items.push(item);
    }
    const problem = trailing.problem?.(items as never[]);
    if (problem) return fail("bad_entry", `${layout.c}: ${problem}`, type);
    out[trailing.ts] = items;
  }
  return { ok: true, value: out as unknown as Message };
}

/**
 * Decodes a message from a buffer of `capacity` bytes that holds it at its start, as a synchronous
 * FilterGetMessage leaves it (the call does not say how many bytes it wrote): Header.Size must be
 * <= capacity, and only Header.Size bytes are read.
 */
export function decodeFromCapacity(bytes: Uint8Array): Result<Message> {
  if (bytes.length < Layouts.header.size) {
    return fail("short_buffer", `${bytes.length} bytes is shorter than the 16-byte message header`);
  }
  const size = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  if (size > bytes.length) {
    return fail("size_mismatch", `Header.Size ${size} exceeds the ${bytes.length}-byte buffer`);
  }
  return decodeMessage(bytes.subarray(0, size));
}

/** Decodes a FilterGetMessage buffer: FILTER_MESSAGE_HEADER then one message. */
export function decodePortMessage(bytes: Uint8Array): Result<PortMessage> {
  if (bytes.length < PORT_HEADER_SIZE) {
    return fail("short_buffer", `${bytes.length} bytes is shorter than the 16-byte FILTER_MESSAGE_HEADER`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const replyLength = dv.getUint32(0, true);
  const messageId = dv.getBigUint64(8, true);
  const r = decodeFromCapacity(bytes.subarray(PORT_HEADER_SIZE));
  if (!r.ok) {
    const e = r.error;
    return { ok: false, error: new CodecError(e.code, e.message, messageId, e.messageType) };
  }
  return { ok: true, value: { replyLength, messageId, message: r.value } };
}

/** Decodes a FilterReplyMessage buffer (simulator and tests). */
export function decodeReply(
  bytes: Uint8Array,
): Result<{ status: number; messageId: bigint; response: PolicyResponse }> {
  if (bytes.length < PORT_HEADER_SIZE) {
    return fail("short_buffer", `${bytes.length} bytes is shorter than the 16-byte FILTER_REPLY_HEADER`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = decodeMessage(bytes.subarray(PORT_HEADER_SIZE));
  if (!r.ok) return r;
  if (r.value.type !== MsgType.POLICY_RESPONSE) {
    return fail(
      "unknown_type",
      `a reply carries MSG_POLICY_RESPONSE, not type ${r.value.type}`,
      r.value.type,
    );
  }
  return {
    ok: true,
    value: { status: dv.getInt32(0, true), messageId: dv.getBigUint64(8, true), response: r.value },
  };
}
