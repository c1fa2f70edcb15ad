/** gRPC figures for policy-bench.ts: one @grpc/grpc-js client process against a loopback server. */
import {
  CheckRequestSchema,
  CheckResponseSchema,
  CheckStreamRequestSchema,
  type CheckStreamResponse,
  CheckStreamResponseSchema,
  Kind,
  Operation,
} from "@agentsh/proto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { startPolicyServer } from "../src/server.js";
import { generatePolicy } from "./policy-gen.js";

const OPS = [Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DELETE];

function requests(n: number) {
  return Array.from({ length: n }, (_, i) =>
    create(CheckRequestSchema, {
      requestId: BigInt(i),
      kind: i % 5 === 4 ? Kind.REGISTRY : Kind.FILE,
      operation: OPS[i % 4]!,
      path:
        i % 5 === 4
          ? `\\REGISTRY\\MACHINE\\SOFTWARE\\Vendor${i % 1000}\\Settings`
          : `\\Device\\HarddiskVolume3\\work\\agent${i % 8}\\repo\\src\\m${i % 50}\\f${i % 7}.ts`,
      session: { workspace: `C:\\work\\agent${i % 8}\\repo`, userSid: `S-1-5-21-1-2-3-${1001 + (i % 8)}` },
      volumes: [{ device: "\\Device\\HarddiskVolume3", drive: "C:" }],
    }),
  );
}

export async function grpcBench(quick: boolean): Promise<Record<string, number>> {
  const seconds = quick ? 0.5 : 2;
  const server = await startPolicyServer({ address: "127.0.0.1:0", policyText: generatePolicy(1000) });
  const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  const reqs = requests(4096);
  const ser = (m: (typeof reqs)[0]) => Buffer.from(toBinary(CheckRequestSchema, m));
  const de = (b: Buffer) => fromBinary(CheckResponseSchema, b);
  try {
    // unary, 64 calls in flight
    const unary = (i: number) =>
      new Promise<void>((resolve, reject) =>
        client.makeUnaryRequest("/agentsh.v1.PolicyService/Check", ser, de, reqs[i & 4095]!, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
    for (let i = 0; i < 2000; i++) await unary(i);
    let done = 0;
    const end = Date.now() + seconds * 1000;
    const t0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: 64 }, async (_, w) => {
        for (let i = w; Date.now() < end; i += 64) {
          await unary(i);
          done++;
        }
      }),
    );
    const unaryRate = done / (Number(process.hrtime.bigint() - t0) / 1e9);

    // bidirectional stream, up to 512 outstanding
    const call = client.makeBidiStreamRequest(
      "/agentsh.v1.PolicyService/CheckStream",
      (m: ReturnType<typeof create<typeof CheckStreamRequestSchema>>) =>
        Buffer.from(toBinary(CheckStreamRequestSchema, m)),
      (b: Buffer) => fromBinary(CheckStreamResponseSchema, b),
    );
    const streamReqs = reqs.map((check) => create(CheckStreamRequestSchema, { check }));
    let sent = 0;
    let got = 0;
    let resume: (() => void) | undefined;
    call.on("data", (_m: CheckStreamResponse) => {
      got++;
      if (sent - got < 256) resume?.();
    });
    const sEnd = Date.now() + seconds * 1000;
    const t1 = process.hrtime.bigint();
    while (Date.now() < sEnd) {
      while (sent - got < 512) call.write(streamReqs[sent++ & 4095]!);
      await new Promise<void>((r) => (resume = r));
      resume = undefined;
    }
    while (got < sent) await new Promise<void>((r) => (resume = r));
    const streamRate = got / (Number(process.hrtime.bigint() - t1) / 1e9);
    call.end();
    return {
      grpc_checks_per_s_unary: Math.round(unaryRate),
      grpc_checks_per_s_stream: Math.round(streamRate),
    };
  } finally {
    client.close();
    await server.close();
  }
}
