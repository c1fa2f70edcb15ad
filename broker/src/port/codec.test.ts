import { describe, expect, it } from "vitest";
import {
  decodeFromCapacity,
  decodeMessage,
  decodePortMessage,
  decodeReply,
  encodeMessage,
  encodePortMessage,
  encodeReply,
  type Message,
} from "./codec.js";
import { CodecError } from "./codec-error.js";
import { SAMPLES } from "./codec-samples.js";
import { Decision, FileOp, Layouts, MAX_STRING_CHARS, MsgType } from "./protocol.js";

function decodeOk(buf: Uint8Array): Message {
  const r = decodeMessage(buf);
  if (!r.ok) throw r.error;
  return r.value;
}

function decodeErr(buf: Uint8Array): CodecError {
  const r = decodeMessage(buf);
  expect(r.ok).toBe(false);
  if (r.ok) throw new Error("decoded");
  expect(r.error).toBeInstanceOf(CodecError);
  return r.error;
}

const file = SAMPLES.find((m) => m.type === MsgType.POLICY_CHECK_FILE)!;

describe("codec round trip", () => {
  it.each(SAMPLES.map((m) => [m.type, m] as const))(
    "type %i encodes and decodes to the same message",
    (_t, msg) => {
      const bytes = encodeMessage(msg);
      expect(bytes.readUInt32LE(4)).toBe(bytes.length);
      expect(decodeOk(bytes)).toEqual(msg);
    },
  );

  it("lays strings out after the fixed part, NUL-terminated, in field order", () => {
    const bytes = encodeMessage(file);
    const off = bytes.readUInt32LE(Layouts.fileRequest.fields.find((f) => f.c === "Path")!.offset);
    const len = bytes.readUInt32LE(Layouts.fileRequest.fields.find((f) => f.c === "Path")!.offset + 4);
    expect(off).toBe(Layouts.fileRequest.size);
    expect(bytes.toString("utf16le", off, off + 2 * len)).toBe(file.type === 1 ? file.path : "");
    expect(bytes.readUInt16LE(off + 2 * len)).toBe(0);
  });

  it("writes an empty string as {0, 0}", () => {
    const reg = SAMPLES.find((m) => m.type === MsgType.POLICY_CHECK_REGISTRY)!;
    const bytes = encodeMessage(reg);
    expect(bytes.readUInt32LE(64)).toBe(0);
    expect(bytes.readUInt32LE(68)).toBe(0);
  });

  it("frames a driver message behind FILTER_MESSAGE_HEADER", () => {
    const port = encodePortMessage(0xabcdefn, 32, file);
    const r = decodePortMessage(port);
    expect(r.ok && r.value).toEqual({ replyLength: 32, messageId: 0xabcdefn, message: file });
  });

  it("builds a 48-byte reply: FILTER_REPLY_HEADER + AGENTSH_POLICY_RESPONSE", () => {
    const reply = encodeReply(77n, {
      requestId: 5n,
      decision: Decision.DENY,
      cacheTTLMs: 1000,
      flags: 0,
      reserved: 0,
    });
    expect(reply.length).toBe(48);
    expect(reply.readBigUInt64LE(8)).toBe(77n);
    expect(reply.readUInt32LE(16)).toBe(MsgType.POLICY_RESPONSE);
    expect(reply.readUInt32LE(20)).toBe(32);
    const r = decodeReply(reply);
    expect(r.ok && r.value.response.decision).toBe(Decision.DENY);
  });

  it("reads only Header.Size bytes from a larger FilterGetMessage buffer", () => {
    const big = Buffer.alloc(4096, 0xee);
    encodeMessage(file).copy(big);
    const r = decodeFromCapacity(big);
    expect(r.ok && r.value).toEqual(file);
  });

  it("accepts a string of the maximum length and rejects one longer on encode", () => {
    const long = "a".repeat(MAX_STRING_CHARS);
    expect(decodeOk(encodeMessage({ ...file, path: long }))).toMatchObject({ path: long });
    expect(() => encodeMessage({ ...file, path: `${long}a` })).toThrow(CodecError);
  });

  it("refuses values that do not fit their field on encode", () => {
    expect(() => encodeMessage({ ...file, processId: -1 })).toThrow(/ProcessId/);
    expect(() => encodeMessage({ ...file, operation: 2 ** 32 })).toThrow(/Operation/);
    expect(() => encodeMessage({ ...file, sessionToken: -1n })).toThrow(/SessionToken/);
    expect(() => encodeMessage({ ...file, path: "a\ud800" })).toThrow(/surrogate/);
    expect(() => encodeMessage({ type: 999 } as unknown as Message)).toThrow(/not a message type/);
    expect(() =>
      encodeMessage({
        type: MsgType.EXCLUDE_PROCESS,
        requestId: 1n,
        action: 0,
        processIds: new Array(65).fill(1),
      }),
    ).toThrow(/at most 64/);
  });
});

describe("codec rejects malformed input with a typed error", () => {
  const good = encodeMessage(file);
  const pathOff = 48;

  it("short buffer", () => {
    expect(decodeErr(good.subarray(0, 10)).code).toBe("short_buffer");
    const tiny = Buffer.from(good.subarray(0, 40));
    tiny.writeUInt32LE(40, 4);
    expect(decodeErr(tiny).code).toBe("short_buffer");
  });

  it("size field that disagrees with the buffer", () => {
    const b = Buffer.from(good);
    b.writeUInt32LE(good.length + 2, 4);
    expect(decodeErr(b).code).toBe("size_mismatch");
    const fixed = encodeMessage(SAMPLES.find((m) => m.type === MsgType.SET_CONFIG)!);
    const padded = Buffer.concat([fixed, Buffer.alloc(8)]);
    padded.writeUInt32LE(padded.length, 4);
    expect(decodeErr(padded).code).toBe("size_mismatch");
  });

  it("unknown type", () => {
    const b = Buffer.from(good);
    b.writeUInt32LE(42, 0);
    const e = decodeErr(b);
    expect(e.code).toBe("unknown_type");
    expect(e.message).toMatch(/42/);
  });

  it("string without terminator", () => {
    const b = Buffer.from(good);
    const off = b.readUInt32LE(pathOff);
    const len = b.readUInt32LE(pathOff + 4);
    b.writeUInt16LE(0x41, off + 2 * len);
    expect(decodeErr(b).code).toBe("missing_terminator");
  });

  it("string outside the message, misaligned, or inside the fixed part", () => {
    for (const [offset, length] of [
      [good.length, 1],
      [good.length - 2, 1],
      [73, 1],
      [8, 1],
      [0, 3],
      [72, 0xffff],
    ] as const) {
      const b = Buffer.from(good);
      b.writeUInt32LE(offset, pathOff);
      b.writeUInt32LE(length, pathOff + 4);
      expect(["bad_string", "too_large", "missing_terminator"]).toContain(decodeErr(b).code);
    }
  });

  it("invalid UTF-16 (unpaired surrogates)", () => {
    for (const unit of [0xd800, 0xdfff]) {
      const b = Buffer.from(good);
      const off = b.readUInt32LE(pathOff);
      b.writeUInt16LE(unit, off + 2);
      const e = decodeErr(b);
      expect(e.code).toBe("invalid_utf16");
      expect(e.message).toMatch(/AGENTSH_FILE_REQUEST\.Path/);
    }
  });

  it("exclude count that disagrees with the size or the limit", () => {
    const ex = encodeMessage({ type: MsgType.EXCLUDE_PROCESS, requestId: 1n, action: 0, processIds: [1, 2] });
    const b = Buffer.from(ex);
    b.writeUInt32LE(3, 20);
    expect(decodeErr(b).code).toBe("bad_count");
    b.writeUInt32LE(1000, 20);
    expect(decodeErr(b).code).toBe("bad_count");
  });

  it("decision counts: a count that disagrees with the size or the limit, a bad entry", () => {
    const entry = { source: 1, kind: 1, operation: 3, decision: 1, count: 5n };
    const reply: Message = {
      type: MsgType.DECISION_COUNTS_REPLY,
      requestId: 1n,
      reserved: 0,
      entries: [entry],
    };
    const b = Buffer.from(encodeMessage(reply));
    expect(b.length).toBe(48);
    expect(decodeMessage(b)).toEqual({ ok: true, value: reply });
    b.writeUInt32LE(2, 16);
    expect(decodeErr(b).code).toBe("bad_count");
    b.writeUInt32LE(97, 16);
    expect(decodeErr(b).message).toMatch(/Count 97 > 96/);
    expect(() => encodeMessage({ ...reply, entries: new Array(97).fill(entry) })).toThrow(/at most 96/);
    // entries: known values, a count, in slot order (as the C validator requires)
    const two = Buffer.from(
      encodeMessage({ ...reply, entries: [entry, { ...entry, operation: 4 }] } as Message),
    );
    expect(decodeMessage(two).ok).toBe(true);
    for (const [at, v, why] of [
      [24, 3, /unknown Source 3/],
      [28, 3, /Kind 3/],
      [32, 8, /Operation 8/],
      [36, 2, /Decision 2/],
      [56, 3, /slot 23 after slot 23/],
    ] as const) {
      const b2 = Buffer.from(two);
      b2.writeUInt32LE(v, at);
      const e = decodeErr(b2);
      expect(e.code).toBe("bad_entry");
      expect(e.message).toMatch(why);
    }
    const zero = Buffer.from(two);
    zero.writeBigUInt64LE(0n, 40);
    expect(decodeErr(zero).message).toMatch(/entry 0: Count 0/);
    expect(() => encodeMessage({ ...reply, entries: [entry, entry] } as Message)).toThrow(/slot 23 after/);
    expect(() => encodeMessage({ ...reply, entries: [{ ...entry, count: -1n }] })).toThrow(
      /AGENTSH_DECISION_COUNTS\.entries\[0\]\.Count/,
    );
  });

  it("keeps the port MessageId on a malformed message so a reply is still possible", () => {
    const port = encodePortMessage(99n, 32, file);
    port.writeUInt32LE(7, 16);
    const r = decodePortMessage(port);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.messageId).toBe(99n);
      expect(r.error.code).toBe("unknown_type");
    }
  });

  it("rejects a reply that is not a policy response", () => {
    const notReply = encodePortMessage(1n, 0, { type: MsgType.SHUTDOWN, requestId: 1n });
    const r = decodeReply(notReply);
    expect(r.ok).toBe(false);
  });

  it("never returns a partial message", () => {
    const b = Buffer.from(encodeMessage({ ...file, operation: FileOp.WRITE }));
    b.writeUInt16LE(0xdc00, b.readUInt32LE(56) + 4); // RenameDest broken, Path fine
    const r = decodeMessage(b);
    expect(r).toEqual({ ok: false, error: expect.any(CodecError) });
  });
});

describe("reply fast path", () => {
  it("equals the generic encoding of the same response behind FILTER_REPLY_HEADER", () => {
    const response = {
      requestId: 0xffffffffffn,
      decision: Decision.PENDING,
      cacheTTLMs: 0xffffffff,
      flags: 0,
      reserved: 0,
    };
    const generic = encodeMessage({ ...response, type: MsgType.POLICY_RESPONSE });
    const reply = encodeReply(5n, response, -1073741823);
    expect(reply.subarray(16).toString("hex")).toBe(generic.toString("hex"));
    expect(reply.readInt32LE(0)).toBe(-1073741823);
    expect(reply.readUInt32LE(4)).toBe(0);
  });
});
