import { CheckRequestSchema, Decision, Kind, Operation } from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { Relay, type RelayOptions } from "./relay.js";
import { PolicyChannel, targetOf } from "./relay-grpc.js";
import { startTestServer, type TestServer } from "./relay-test-server.js";

const req = (path = "C:\\w\\a.c") =>
  create(CheckRequestSchema, { kind: Kind.FILE, operation: Operation.WRITE, path, session: { token: 1n } });

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(servers: TestServer[], opts: Partial<RelayOptions> = {}) {
  const channel = new PolicyChannel({ target: targetOf(servers.map((s) => s.address)) });
  const relay = new Relay({
    channel,
    failMode: "closed",
    streams: 2,
    breakerThreshold: 3,
    probeIntervalMs: 100,
    staleIfErrorMs: 0,
    ...opts,
  });
  cleanups.push(
    () => channel.close(),
    () => relay.close(),
  );
  return relay;
}

async function server(init?: Parameters<typeof startTestServer>[0]) {
  const s = await startTestServer(init);
  cleanups.push(() => s.kill());
  return s;
}

const within = (ms: number) => Date.now() + ms;

describe("relay", () => {
  it("answers from the server over the check stream", async () => {
    const s = await server({
      decide: () => ({ decision: Decision.DENY, rule: "secrets", cacheTtlMs: 60000 }),
    });
    const relay = await setup([s]);
    const d = await relay.check(req(), "k", within(2000));
    expect(d.source).toBe("server");
    expect(d.response.decision).toBe(Decision.DENY);
    expect(d.response.rule).toBe("secrets");
    expect(s.calls.stream).toBe(1);
  });

  it.each([
    [true, 5],
    [false, 21],
  ])(
    "checks ready in one turn leave in one message when the server announces batches (%s)",
    async (batches, messages) => {
      const s = await server({ batches });
      const relay = await setup([s]);
      // The first check opens a stream and brings its response headers.
      expect((await relay.check(req(), "k0", within(2000))).source).toBe("server");
      const all = await Promise.all(
        Array.from({ length: 20 }, (_, i) => relay.check(req(`C:\\w\\${i}.c`), `k${i + 1}`, within(2000))),
      );
      expect(all.every((d) => d.source === "server" && d.response.decision === Decision.ALLOW)).toBe(true);
      expect(s.calls.streamChecks).toBe(21);
      // Batches: the first check; then, of the 20: two alone on the second stream (its server has not
      // announced batches yet), one alone while at most two are in flight (light load), and the other
      // 17 in one message.
      expect(s.calls.stream).toBe(messages);
    },
  );

  it.each([
    ["closed", Decision.DENY],
    ["open", Decision.ALLOW],
  ] as const)("fail mode %s decides when the server misses the deadline", async (mode, expected) => {
    const s = await server({ delayMs: 1000 });
    const relay = await setup([s], { failMode: mode });
    const started = Date.now();
    const d = await relay.check(req(), "k", within(150));
    expect(Date.now() - started).toBeLessThan(900);
    expect(d.source).toBe("fail_mode");
    expect(d.response.decision).toBe(expected);
    expect(d.response.cacheTtlMs).toBe(0);
    expect(d.reason).toMatch(/deadline/);
  });

  it("opens the breaker after K failures, then answers without waiting; a probe closes it", async () => {
    const s = await server({ fail: Code.Unavailable });
    const relay = await setup([s], { breakerThreshold: 3, probeIntervalMs: 100 });
    for (let i = 0; i < 3; i++)
      expect((await relay.check(req(), "k", within(1000))).source).toBe("fail_mode");
    expect(relay.breakerState).toBe("open");
    s.behavior.delayMs = 5000; // a server call now would take seconds
    const before = s.calls.unary + s.calls.stream;
    const started = Date.now();
    for (let i = 0; i < 50; i++)
      expect((await relay.check(req(), "k", within(3000))).source).toBe("fail_mode");
    expect(Date.now() - started).toBeLessThan(2000);
    expect(s.calls.unary + s.calls.stream).toBe(before);
    s.behavior.fail = null;
    s.behavior.delayMs = 0;
    await expect.poll(() => relay.breakerState, { timeout: 3000 }).toBe("closed");
    expect((await relay.check(req(), "k", within(2000))).source).toBe("server");
    expect(relay.stats().breaker.opened).toBe(1);
    expect(relay.stats().breaker.probes).toBeGreaterThan(0);
  });

  it("reuses the last server answer within the stale-if-error window, then falls to fail mode", async () => {
    const s = await server({
      decide: () => ({ decision: Decision.ALLOW, rule: "workspace", cacheTtlMs: 5000 }),
    });
    const relay = await setup([s], { failMode: "closed", staleIfErrorMs: 300, breakerThreshold: 100 });
    expect((await relay.check(req(), "k1", within(1000))).source).toBe("server");
    s.behavior.fail = Code.Unavailable;
    const stale = await relay.check(req(), "k1", within(1000));
    expect(stale.source).toBe("stale");
    expect(stale.response.decision).toBe(Decision.ALLOW);
    expect(stale.response.cacheTtlMs).toBe(0);
    expect((await relay.check(req(), "other", within(1000))).source).toBe("fail_mode");
    await new Promise((r) => setTimeout(r, 350));
    expect((await relay.check(req(), "k1", within(1000))).source).toBe("fail_mode");
  });

  it("a policy change empties the stale store", async () => {
    const s = await server();
    const relay = await setup([s], { staleIfErrorMs: 60_000, breakerThreshold: 100 });
    await relay.check(req(), "k", within(1000));
    relay.policyChanged();
    s.behavior.fail = Code.Unavailable;
    expect((await relay.check(req(), "k", within(1000))).source).toBe("fail_mode");
  });

  it("answers deny to an invalid request without counting it against the server", async () => {
    const s = await server({ fail: Code.InvalidArgument });
    const relay = await setup([s], { breakerThreshold: 1 });
    const d = await relay.check(req(), "k", within(1000));
    expect(d.response.decision).toBe(Decision.DENY);
    expect(d.response.rule).toBe("broker:invalid-request");
    expect(relay.breakerState).toBe("closed");
  });

  it("falls to the fail mode at once when nothing listens", async () => {
    const relay = await setup([{ address: "127.0.0.1:1" } as TestServer], { failMode: "open" });
    const d = await relay.check(req(), "k", within(2000));
    expect(d.source).toBe("fail_mode");
    expect(d.response.decision).toBe(Decision.ALLOW);
  });

  it("two replicas, one killed under load: every check still gets a server decision", async () => {
    const a = await server({ delayMs: 5 });
    const b = await server({ delayMs: 5 });
    const relay = await setup([a, b], { streams: 2, breakerThreshold: 1000, streamMaxAgeMs: 10 });
    // Until both replicas have served a stream, round robin has had only one READY replica to use.
    await expect
      .poll(
        async () => {
          await relay.check(req(), "warm", within(1000));
          return a.calls.stream > 0 && b.calls.stream > 0;
        },
        { timeout: 5000, interval: 20 },
      )
      .toBe(true);
    const results: Array<Promise<string>> = [];
    for (let i = 0; i < 400; i++) {
      results.push(relay.check(req(`C:\\w\\${i}`), `k${i}`, within(3000)).then((d) => d.source));
      if (i === 150) await a.kill();
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    const sources = await Promise.all(results);
    expect(sources.filter((s) => s !== "server")).toEqual([]);
    expect(a.calls.stream + a.calls.unary).toBeGreaterThan(0);
    expect(b.calls.stream + b.calls.unary).toBeGreaterThan(0);
  });
});
