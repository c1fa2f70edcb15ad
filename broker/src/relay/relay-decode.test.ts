import {
  AwaitApprovalResponseSchema,
  CheckRequestSchema,
  CheckResponseSchema,
  CheckStreamResponseSchema,
  Decision,
  health,
  type Kind,
  WatchPolicyResponseSchema,
} from "@agentsh/proto";
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { compiledDeserializer } from "./relay-decode.js";

function decode<D extends DescMessage>(desc: D, bytes: Uint8Array): MessageShape<D> {
  const de = compiledDeserializer(desc);
  expect(de, `${desc.typeName} is compiled`).not.toBeNull();
  return de!(Buffer.from(bytes));
}

function same<D extends DescMessage>(desc: D, msg: MessageShape<D> | Uint8Array): void {
  const bytes = msg instanceof Uint8Array ? msg : toBinary(desc, msg);
  expect(decode(desc, bytes)).toStrictEqual(fromBinary(desc, bytes));
}

const response = (over: Omit<MessageInitShape<typeof CheckResponseSchema>, "$typeName"> = {}) =>
  create(CheckResponseSchema, {
    requestId: 0xfedcba9876543210n,
    decision: Decision.DENY,
    rule: "secrets",
    pattern: "C:\\Users\\*\\.ssh\\**",
    policyVersion: "7-3f2a9c1b0d4e",
    mitreTechnique: "T1552.004",
    message: "agent may not touch credentials: C:\\Users\\dev\\.ssh\\id_ed25519 ünïcødé 😀",
    cacheTtlMs: 60_000,
    mode: 1,
    enforcedDecision: Decision.DENY,
    decidedSide: "destination",
    canonicalPath: "C:\\USERS\\DEV\\.SSH\\ID_ED25519",
    redirectPath: "",
    approvalId: "a-1",
    approvalTimeoutMs: 120_000,
    notify: true,
    ...over,
  });

describe("compiled deserialisers read what fromBinary reads", () => {
  it("check responses, alone and on the stream (both cases of the oneof, and neither)", () => {
    same(CheckResponseSchema, response());
    same(CheckResponseSchema, create(CheckResponseSchema));
    same(
      CheckStreamResponseSchema,
      create(CheckStreamResponseSchema, { result: { case: "response", value: response() } }),
    );
    same(
      CheckStreamResponseSchema,
      create(CheckStreamResponseSchema, {
        result: {
          case: "error",
          value: { requestId: 9n, code: "invalid_argument", message: "path is required" },
        },
      }),
    );
    same(CheckStreamResponseSchema, create(CheckStreamResponseSchema));
  });

  it("requests with nested messages, lists and maps; negative enums; long strings", () => {
    const req = create(CheckRequestSchema, {
      requestId: 1n,
      kind: -1 as Kind,
      path: `C:\\${"ünïcødé\\".repeat(40)}${"x".repeat(20_000)}`,
      session: { token: 0xffffffffffffffffn, workspace: "C:\\w", userSid: "S-1-5-21-1-2-3-1001" },
      volumes: [
        { drive: "C:", device: "\\Device\\HarddiskVolume3" },
        { drive: "D:", device: "\\Device\\HarddiskVolume4" },
      ],
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      tracestate: "vendor=1",
      traceContext: { b3: "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1", other: "" },
    });
    same(CheckRequestSchema, req);
  });

  it("other replies the relay reads", () => {
    same(
      WatchPolicyResponseSchema,
      create(WatchPolicyResponseSchema, { version: "v", loadedAtMs: -5n, changedPrefixes: [] }),
    );
    same(health.HealthCheckResponseSchema, create(health.HealthCheckResponseSchema, { status: 1 }));
    same(AwaitApprovalResponseSchema, create(AwaitApprovalResponseSchema, {}));
  });

  it("unknown fields of every wire type are kept, as fromBinary keeps them", () => {
    const base = toBinary(CheckResponseSchema, response());
    const extra = [
      [0xf8, 0x06, 0x87, 0x01], // 111: varint
      [0x81, 0x07, 1, 2, 3, 4, 5, 6, 7, 8], // 112: fixed64
      [0x8a, 0x07, 0x03, 0x61, 0x62, 0x63], // 113: length-delimited
      [0x95, 0x07, 1, 2, 3, 4], // 114: fixed32
      [0x10, 0x02], // decision (2) again: the last value wins
      [0x1a, 0x01, 0x78], // rule (3), wrong wire type is fine for strings; appears again
      [0x40, 0x00], // cache_ttl_ms (8) again, value 0
    ];
    same(CheckResponseSchema, new Uint8Array([...base, ...extra.flat()]));
  });

  it("malformed input throws, as fromBinary does", () => {
    const good = toBinary(
      CheckStreamResponseSchema,
      create(CheckStreamResponseSchema, { result: { case: "response", value: response() } }),
    );
    for (const bad of [
      good.subarray(0, good.length - 1), // truncated string
      good.subarray(0, 3), // truncated nested message
      new Uint8Array([0x08]), // truncated varint
      new Uint8Array([0x00, 0x01]), // field number 0
      new Uint8Array([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // 11-byte varint
      new Uint8Array([0x0f]), // wire type 7
    ]) {
      expect(() => fromBinary(CheckStreamResponseSchema, bad)).toThrow();
      expect(() => decode(CheckStreamResponseSchema, bad)).toThrow();
    }
  });

  it("random mutations: what it accepts, fromBinary reads as the same message", () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const good = toBinary(
      CheckStreamResponseSchema,
      create(CheckStreamResponseSchema, { result: { case: "response", value: response() } }),
    );
    const de = compiledDeserializer(CheckStreamResponseSchema)!;
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      // Mostly whole (a cut breaks the outer length), with one to three bytes changed anywhere.
      const b = Buffer.from(good.subarray(0, good.length - (rnd(4) === 0 ? rnd(8) : 0)));
      for (let k = 0, n = 1 + rnd(3); k < n; k++) b[rnd(b.length)] = rnd(256);
      let mine: unknown;
      try {
        mine = de(b);
      } catch {
        continue; // it may be stricter than fromBinary (it refuses groups), never more lenient
      }
      accepted++;
      expect(mine).toStrictEqual(fromBinary(CheckStreamResponseSchema, new Uint8Array(b)));
    }
    expect(accepted).toBeGreaterThan(2000);
  });
});
