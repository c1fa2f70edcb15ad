import { describe, expect, it } from "vitest";
import type { DecisionCount, DecisionCountsReply, MetricsReply } from "./port/codec.js";
import {
  DecisionEventSource,
  Decision as DriverDecision,
  FileOp,
  Kind,
  MsgType,
  RegOp,
} from "./port/protocol.js";
import { DriverPoll, decisionSeries } from "./telemetry-metrics.js";

/** agentsh.decisions of one series (0 when it does not exist). */
function count(attrs: Record<string, string>): number {
  const want = JSON.stringify(Object.entries(attrs).sort());
  return decisionSeries()
    .filter((s) => JSON.stringify(Object.entries(s.attrs).sort()) === want)
    .reduce((a, s) => a + s.n, 0);
}

const metrics = (cacheHitCount: bigint, failModeDecisions: bigint, allowDecisions = 100n) =>
  ({
    type: MsgType.METRICS_REPLY,
    requestId: 1n,
    cacheHitCount,
    failModeDecisions,
    allowDecisions,
    denyDecisions: 0n,
  }) as unknown as MetricsReply;
const counts = (...entries: DecisionCount[]): DecisionCountsReply => ({
  type: MsgType.DECISION_COUNTS_REPLY,
  requestId: 1n,
  reserved: 0,
  entries,
});
const entry = (
  source: number,
  kind: number,
  operation: number,
  decision: number,
  n: bigint,
): DecisionCount => ({
  source,
  kind,
  operation,
  decision,
  count: n,
});

describe("DriverPoll: what the driver decided alone, into agentsh.decisions", () => {
  it("counts GET_DECISION_COUNTS deltas by kind, operation, decision and source", () => {
    const cachedReadDeny = { kind: "file", operation: "read", decision: "deny", source: "driver_cache" };
    // registry set-value allowed by the fail mode: REG_OP_SET_VALUE is a policy's "write"
    const failWrite = { kind: "registry", operation: "write", decision: "allow", source: "driver_fail_mode" };
    // REG_OP_OPEN_KEY and REG_OP_QUERY_VALUE are both a "read": one series
    const regRead = { kind: "registry", operation: "read", decision: "allow", source: "driver_cache" };
    const base = [count(cachedReadDeny), count(failWrite), count(regRead)];
    const poll = new DriverPoll();
    const { CACHE, FAIL_MODE } = DecisionEventSource;
    const { ALLOW, DENY } = DriverDecision;
    // the first answer is the baseline: what the driver decided before this broker is not counted
    poll.delta(metrics(5n, 1n), counts(entry(CACHE, Kind.FILE, FileOp.READ, DENY, 5n)));
    expect(count(cachedReadDeny)).toBe(base[0]);
    poll.delta(
      metrics(9n, 3n),
      counts(
        entry(CACHE, Kind.FILE, FileOp.READ, DENY, 7n),
        entry(CACHE, Kind.REGISTRY, RegOp.OPEN_KEY, ALLOW, 1n),
        entry(CACHE, Kind.REGISTRY, RegOp.QUERY_VALUE, ALLOW, 1n),
        entry(FAIL_MODE, Kind.REGISTRY, RegOp.SET_VALUE, ALLOW, 2n),
      ),
    );
    expect(count(cachedReadDeny) - base[0]!).toBe(2);
    expect(count(failWrite) - base[1]!).toBe(2);
    expect(count(regRead) - base[2]!).toBe(2);
    // a driver restart: a count below the last one, or one gone, means every count starts from 0
    const fresh = (readDenies: bigint) =>
      counts(
        entry(CACHE, Kind.FILE, FileOp.READ, DENY, readDenies),
        entry(FAIL_MODE, Kind.REGISTRY, RegOp.SET_VALUE, ALLOW, 9n),
      );
    poll.delta(metrics(1n, 0n), fresh(1n));
    expect(count(cachedReadDeny) - base[0]!).toBe(3);
    expect(count(failWrite) - base[1]!).toBe(11);
    // nothing new, nothing counted; and never a series without its kind, operation and decision
    poll.delta(metrics(1n, 0n), fresh(1n));
    expect(count(cachedReadDeny) - base[0]!).toBe(3);
    expect(count(failWrite) - base[1]!).toBe(11);
    // a restart whose counts all stand at or above the last ones shows in the driver's total decisions
    poll.delta(metrics(1n, 0n, 50n), fresh(2n));
    expect(count(cachedReadDeny) - base[0]!).toBe(5);
    expect(count(failWrite) - base[1]!).toBe(20);
    expect(count({ source: "driver_cache" })).toBe(0);
  });

  it("a driver with the counts after one without them: everything it counted is new", () => {
    const cachedWrite = { kind: "file", operation: "write", decision: "allow", source: "driver_cache" };
    const base = count(cachedWrite);
    const poll = new DriverPoll();
    poll.delta(metrics(10n, 0n));
    poll.delta(
      metrics(3n, 0n),
      counts(entry(DecisionEventSource.CACHE, Kind.FILE, FileOp.WRITE, DriverDecision.ALLOW, 3n)),
    );
    expect(count(cachedWrite) - base).toBe(3);
    // and back to one without them: its first answer is a baseline, not a delta against another's
    const cache0 = count({ source: "driver_cache" });
    poll.delta(metrics(500n, 0n));
    poll.delta(metrics(502n, 0n));
    expect(count({ source: "driver_cache" }) - cache0).toBe(2);
  });

  it("from a driver without GET_DECISION_COUNTS, counts GET_METRICS by source only", () => {
    const poll = new DriverPoll();
    const cache0 = count({ source: "driver_cache" });
    const fail0 = count({ source: "driver_fail_mode" });
    poll.delta(metrics(10n, 2n));
    poll.delta(metrics(14n, 3n));
    expect(count({ source: "driver_cache" }) - cache0).toBe(4);
    expect(count({ source: "driver_fail_mode" }) - fail0).toBe(1);
  });
});
