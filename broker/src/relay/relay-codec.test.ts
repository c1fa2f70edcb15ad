import {
  CheckRequestSchema,
  CheckResponseSchema,
  CheckStreamRequestSchema,
  CheckStreamResponseSchema,
  Kind,
  Operation,
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
import { compiledSerializer } from "./relay-codec.js";

function same<D extends DescMessage>(desc: D, msg: MessageShape<D>): void {
  const ser = compiledSerializer(desc);
  expect(ser, `${desc.typeName} is compiled`).not.toBeNull();
  const fast = ser!(msg);
  expect(Buffer.from(fast).toString("hex")).toBe(Buffer.from(toBinary(desc, msg)).toString("hex"));
  expect(fromBinary(desc, new Uint8Array(fast))).toEqual(fromBinary(desc, toBinary(desc, msg)));
}

const check = (over: Omit<MessageInitShape<typeof CheckRequestSchema>, "$typeName"> = {}) =>
  create(CheckRequestSchema, {
    requestId: 0xfedcba9876543210n,
    kind: Kind.FILE,
    operation: Operation.RENAME,
    path: "C:\\work\\s1\\dir\\file.c",
    renameDest: "C:\\Windows\\System32\\évil.dll",
    valueName: "",
    session: {
      token: 42n,
      workspace: "C:\\work\\s1",
      userSid: "S-1-5-21-1-2-3-1001",
      agent: "builder",
      host: "h",
    },
    pid: 4004,
    volumes: [
      { drive: "C:", device: "\\Device\\HarddiskVolume3" },
      { drive: "D:", device: "\\Device\\HarddiskVolume4" },
    ],
    driverOperation: 5,
    desiredAccess: 0x80120116,
    createDisposition: 1,
    flags: 3,
    valueType: 0,
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    tracestate: "vendor=1",
    traceContext: { b3: "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1" },
    ...over,
  });

describe("compiled serialisers write what toBinary writes", () => {
  it("check requests, alone and on the stream", () => {
    same(CheckRequestSchema, check());
    same(CheckRequestSchema, create(CheckRequestSchema));
    same(CheckStreamRequestSchema, create(CheckStreamRequestSchema, { check: check() }));
    same(CheckStreamRequestSchema, create(CheckStreamRequestSchema));
  });

  it("long, non-ASCII and lone-surrogate strings; multi-byte lengths of nested messages", () => {
    const long = `C:\\${"ünïcødé\\".repeat(40)}${"x".repeat(20_000)}`;
    same(CheckStreamRequestSchema, create(CheckStreamRequestSchema, { check: check({ path: long }) }));
    same(CheckRequestSchema, check({ path: "C:\\\ud800bad\udfff", valueName: "😀" }));
    same(CheckRequestSchema, check({ session: { workspace: "w".repeat(130) } }));
  });

  it("negative enums, zero values, unknown fields", () => {
    same(CheckRequestSchema, check({ kind: -1 as Kind, requestId: 0n, pid: 0 }));
    const withUnknown = fromBinary(
      CheckRequestSchema,
      new Uint8Array([...toBinary(CheckRequestSchema, check()), 0xf8, 0x06, 0x07]),
    );
    same(CheckRequestSchema, withUnknown);
  });

  it("other message types it covers", () => {
    same(
      CheckResponseSchema,
      create(CheckResponseSchema, {
        requestId: 1n,
        decision: 2,
        rule: "r",
        cacheTtlMs: 60_000,
        notify: true,
      }),
    );
    same(
      WatchPolicyResponseSchema,
      create(WatchPolicyResponseSchema, { version: "v", loadedAtMs: -5n, changedPrefixes: ["a", "b"] }),
    );
  });

  it("leaves types with a oneof to toBinary", () => {
    expect(compiledSerializer(CheckStreamResponseSchema)).toBeNull();
  });
});
