// Fuzz: random and mutated buffers into every decoder. Every result must be a valid message (that
// re-encodes and decodes to itself) or a CodecError; nothing may throw or hang.
import { describe, expect, it } from "vitest";
import {
  decodeMessage,
  decodePortMessage,
  decodeReply,
  encodeMessage,
  encodePortMessage,
  type Message,
} from "./codec.js";
import { CodecError } from "./codec-error.js";
import { SAMPLES } from "./codec-samples.js";
import { LAYOUT_OF_TYPE, MsgType } from "./protocol.js";

const SEED = Number(process.env.AGENTSH_FUZZ_SEED ?? 0x5eed1234);
const ITERATIONS = Number(process.env.AGENTSH_FUZZ_ITERATIONS ?? 120_000);

/** xorshift32: deterministic, so a failure can be replayed with AGENTSH_FUZZ_SEED. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return { next, below: (n: number) => (n > 0 ? next() % n : 0) };
}

const TYPES = Object.keys(LAYOUT_OF_TYPE).map(Number);
const SEEDS = SAMPLES.map((m) => encodeMessage(m));

/** Writes a little-endian word if it fits (mutations must not throw themselves). */
function put(b: Buffer, at: number, v: number, bytes: 2 | 4): void {
  if (at < 0 || at + bytes > b.length) return;
  if (bytes === 2) b.writeUInt16LE(v, at);
  else b.writeUInt32LE(v >>> 0, at);
}

function mutate(r: ReturnType<typeof rng>): Buffer {
  const base = Buffer.from(SEEDS[r.below(SEEDS.length)]!);
  const edits = 1 + r.below(4);
  let b = base;
  for (let e = 0; e < edits; e++) {
    switch (r.below(9)) {
      case 0: // flip a bit
        if (b.length) b[r.below(b.length)]! ^= 1 << r.below(8);
        break;
      case 1: // random byte
        if (b.length) b[r.below(b.length)] = r.below(256);
        break;
      case 2: // truncate
        b = b.subarray(0, r.below(b.length + 1));
        break;
      case 3: // extend with junk
        b = Buffer.concat([b, Buffer.from(Array.from({ length: 1 + r.below(16) }, () => r.below(256)))]);
        break;
      case 4: // keep Size consistent with the (mutated) length: reach the deeper checks
        put(b, 4, b.length, 4);
        break;
      case 5: // another message type
        put(b, 0, TYPES[r.below(TYPES.length)]!, 4);
        break;
      case 6: // poke a string descriptor (offset/length words after the fixed integers)
        put(b, 16 + 4 * r.below(14), r.next() % (b.length + 8), 4);
        break;
      case 7: // a surrogate somewhere in the string area
        if (b.length > 40) put(b, 40 + 2 * r.below((b.length - 40) >> 1), 0xd800 + r.below(0x800), 2);
        break;
      default: // an extreme 32-bit word
        put(
          b,
          4 * r.below(Math.max(1, b.length >> 2)),
          [0, 1, 0x7fffffff, 0xffffffff, 0x10000][r.below(5)]!,
          4,
        );
    }
  }
  return b;
}

function randomBuffer(r: ReturnType<typeof rng>): Buffer {
  const len = r.below(300);
  const b = Buffer.from(Array.from({ length: len }, () => r.below(256)));
  if (len >= 8 && r.below(2)) {
    b.writeUInt32LE(TYPES[r.below(TYPES.length)]!, 0);
    b.writeUInt32LE(len, 4);
  }
  return b;
}

function checkResult(bytes: Uint8Array, counts: { ok: number; err: number; codes: Set<string> }): void {
  const res = decodeMessage(bytes);
  if (res.ok) {
    counts.ok++;
    const again = decodeMessage(encodeMessage(res.value as Message));
    if (!again.ok) throw new Error(`re-encoding a decoded message failed: ${again.error.message}`);
    expect(again.value).toEqual(res.value);
  } else {
    counts.err++;
    if (!(res.error instanceof CodecError)) throw new Error("non-CodecError result");
    counts.codes.add(res.error.code);
  }
}

describe("codec fuzz", () => {
  it(`${ITERATIONS} random and mutated buffers: a valid message or a typed error, never a throw`, () => {
    const r = rng(SEED);
    const counts = { ok: 0, err: 0, codes: new Set<string>() };
    const started = Date.now();
    for (let i = 0; i < ITERATIONS; i++) {
      const bytes = i % 3 === 0 ? randomBuffer(r) : mutate(r);
      try {
        checkResult(bytes, counts);
        const port = decodePortMessage(Buffer.concat([Buffer.alloc(16, i & 0xff), bytes]));
        if (!port.ok && !(port.error instanceof CodecError)) throw new Error("port: non-CodecError");
        const reply = decodeReply(bytes);
        if (!reply.ok && !(reply.error instanceof CodecError)) throw new Error("reply: non-CodecError");
      } catch (e) {
        throw new Error(
          `iteration ${i} (seed ${SEED}) input ${Buffer.from(bytes).toString("hex")}: ${String(e)}`,
        );
      }
    }
    expect(counts.ok + counts.err).toBe(ITERATIONS);
    // The mutations reach past the header checks: valid messages and every structural error occur.
    expect(counts.ok).toBeGreaterThan(ITERATIONS / 50);
    for (const code of [
      "short_buffer",
      "size_mismatch",
      "unknown_type",
      "bad_string",
      "missing_terminator",
      "invalid_utf16",
      "bad_count",
    ]) {
      expect(counts.codes, code).toContain(code);
    }
    expect(Date.now() - started).toBeLessThan(120_000);
  });

  it("a port message whose ReplyLength or MessageId is anything still decodes by its body", () => {
    const msg = SAMPLES.find((m) => m.type === MsgType.POLICY_CHECK_FILE)!;
    for (const id of [0n, 1n, (1n << 64n) - 1n]) {
      const r = decodePortMessage(encodePortMessage(id, 0xffffffff, msg));
      expect(r.ok && r.value.messageId).toBe(id);
    }
  });
});
