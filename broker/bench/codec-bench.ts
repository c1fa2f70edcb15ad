// Codec group: cost of the broker's per-request codec work (decode a driver request from a
// FilterGetMessage buffer, encode the reply), in ns per operation.

import type { BenchGroup } from "../../test/bench/main.js";
import { decodePortMessage, encodePortMessage, encodeReply } from "../src/port/codec.js";
import { SAMPLES } from "../src/port/codec-samples.js";
import { Decision, MsgType } from "../src/port/protocol.js";

function nsPerOp(iterations: number, fn: () => void): number {
  for (let i = 0; i < Math.min(10_000, iterations); i++) fn(); // warm up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - t0) / iterations;
}

const run: BenchGroup = async ({ quick }) => {
  const n = quick ? 50_000 : 500_000;
  const file = SAMPLES.find((m) => m.type === MsgType.POLICY_CHECK_FILE)!;
  const buf = Buffer.alloc(64 * 1024);
  encodePortMessage(1n, 32, file).copy(buf);
  let sink = 0;
  const decodeNs = nsPerOp(n, () => {
    const r = decodePortMessage(buf);
    if (r.ok) sink += r.value.replyLength;
  });
  const encodeNs = nsPerOp(n, () => {
    sink += encodeReply(1n, {
      requestId: 1n,
      decision: Decision.ALLOW,
      cacheTTLMs: 5000,
      flags: 0,
      reserved: 0,
    }).length;
  });
  if (sink === -1) process.stderr.write("");
  return { codec_decode_file_request_ns: decodeNs, codec_encode_reply_ns: encodeNs };
};
export default run;
