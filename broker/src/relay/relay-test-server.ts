// Test support: a real gRPC server (connect-node on HTTP/2) speaking PolicyService and
// grpc.health.v1 whose speed and failures a test controls, for the relay's deadline, retry, breaker
// and fail-mode tests. The end-to-end tests use the real policy server instead.
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import {
  CHECK_BATCH_HEADER,
  type CheckRequest,
  type CheckResponse,
  CheckResponseSchema,
  Decision,
  health,
  PolicyService,
} from "@agentsh/proto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

export interface Behavior {
  delayMs: number;
  /** Every check fails with this code (and health reports NOT_SERVING). */
  fail: Code | null;
  decide: (req: CheckRequest) => MessageInitShape<typeof CheckResponseSchema>;
  /** Announce and accept batches on CheckStream, as the real server does (old servers do not). */
  batches: boolean;
}

export interface TestServer {
  port: number;
  address: string;
  behavior: Behavior;
  /** stream: CheckStream messages; streamChecks: the checks they carried. */
  calls: { unary: number; stream: number; streamChecks: number; health: number };
  /** Stops abruptly: open connections are destroyed, as when a replica dies. */
  kill(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startTestServer(init: Partial<Behavior> = {}, port = 0): Promise<TestServer> {
  const behavior: Behavior = {
    delayMs: 0,
    fail: null,
    decide: () => ({ decision: Decision.ALLOW, rule: "test", cacheTtlMs: 5000 }),
    batches: false,
    ...init,
  };
  const calls = { unary: 0, stream: 0, streamChecks: 0, health: 0 };
  const answer = async (req: CheckRequest): Promise<CheckResponse> => {
    if (behavior.delayMs) await sleep(behavior.delayMs);
    if (behavior.fail !== null) throw new ConnectError("test failure", behavior.fail);
    return create(CheckResponseSchema, { ...behavior.decide(req), requestId: req.requestId });
  };
  const routes = (router: ConnectRouter) => {
    router.service(PolicyService, {
      check: (req) => {
        calls.unary++;
        return answer(req);
      },
      async *checkStream(reqs, ctx) {
        if (behavior.batches) ctx.responseHeader.set(CHECK_BATCH_HEADER, "1");
        // Answers concurrently and out of order, as the real server may (a batch's checks too).
        const queue: CheckResponse[] = [];
        let wake = null as (() => void) | null;
        let pending = 0;
        let ended = false;
        (async () => {
          for await (const r of reqs) {
            calls.stream++;
            const checks = r.check ? [r.check, ...r.checks] : r.checks;
            for (const c of checks) {
              calls.streamChecks++;
              pending++;
              answer(c)
                .then(
                  (res) => queue.push(res),
                  () => {},
                )
                .finally(() => {
                  pending--;
                  wake?.();
                });
            }
          }
          ended = true;
          wake?.();
        })().catch(() => {
          ended = true;
          wake?.();
        });
        for (;;) {
          while (queue.length) yield { result: { case: "response" as const, value: queue.shift()! } };
          if (ended && pending === 0) return;
          if (behavior.fail !== null && pending === 0) throw new ConnectError("test failure", behavior.fail);
          await new Promise<void>((r) => {
            wake = r;
          });
          wake = null;
        }
      },
      async *watchPolicy() {
        yield { version: "test-1" };
        await new Promise(() => {});
      },
    });
    router.service(health.Health, {
      check: () => {
        calls.health++;
        const status =
          behavior.fail === null
            ? health.HealthCheckResponse_ServingStatus.SERVING
            : health.HealthCheckResponse_ServingStatus.NOT_SERVING;
        return { status };
      },
      list: () => ({}),
      async *watch() {
        yield { status: health.HealthCheckResponse_ServingStatus.SERVING };
      },
    });
  };
  const server = http2.createServer(connectNodeAdapter({ routes }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  const actual = (server.address() as AddressInfo).port;
  return {
    port: actual,
    address: `127.0.0.1:${actual}`,
    behavior,
    calls,
    kill: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sessions) s.destroy();
      await closed;
    },
  };
}
