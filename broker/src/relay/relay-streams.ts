// A pool of CheckStream calls, the broker's high-throughput path to the policy fleet. Each stream
// multiplexes many checks by request id; with round-robin load balancing each stream lands on a
// replica of its own, so checks spread over the fleet. A stream that breaks fails its in-flight
// checks with a retryable error (the relay retries them elsewhere) and is reopened on next use,
// after a short backoff.

import type { CheckRequest, CheckResponse, CheckStreamRequest, CheckStreamResponse } from "@agentsh/proto";
import type * as grpc from "@grpc/grpc-js";
import { RelayError } from "./relay-error.js";

interface Pending {
  resolve: (r: CheckResponse) => void;
  reject: (e: RelayError) => void;
  timer: NodeJS.Timeout;
}

interface Slot {
  call: grpc.ClientDuplexStream<unknown, CheckStreamResponse> | null;
  pending: Map<bigint, Pending>;
  /** Do not reopen before this time (after a stream broke). */
  retryAt: number;
  openedAt: number;
}

export class CheckStreams {
  private readonly slots: Slot[];
  private next = 0;
  private nextId = 1n;
  private closed = false;

  constructor(
    private readonly client: grpc.Client & Record<string, unknown>,
    count: number,
    private readonly maxAgeMs = 30_000,
    private readonly reopenBackoffMs = 200,
  ) {
    this.slots = Array.from({ length: Math.max(1, count) }, () => ({
      call: null,
      pending: new Map(),
      retryAt: 0,
      openedAt: 0,
    }));
  }

  /** Checks in flight on all streams. */
  inFlight(): number {
    return this.slots.reduce((n, s) => n + s.pending.size, 0);
  }

  check(req: CheckRequest, deadline: number): Promise<CheckResponse> {
    if (this.closed) return Promise.reject(new RelayError("unavailable", "relay is closed"));
    const slot = this.pickSlot();
    if (!slot) return Promise.reject(new RelayError("unavailable", "every check stream is reconnecting"));
    const id = this.nextId++;
    return new Promise<CheckResponse>((resolve, reject) => {
      const wait = Math.max(0, deadline - Date.now());
      const timer = setTimeout(() => {
        slot.pending.delete(id);
        reject(new RelayError("deadline", `no answer within ${wait} ms`));
      }, wait);
      slot.pending.set(id, { resolve, reject, timer });
      // A literal, not create(): the compiled serialiser (relay-codec.ts) reads fields, not classes.
      const msg: CheckStreamRequest = {
        $typeName: "agentsh.v1.CheckStreamRequest",
        check: { ...req, requestId: id },
      };
      slot.call!.write(msg);
    });
  }

  close(): void {
    this.closed = true;
    for (const s of this.slots) this.breakSlot(s, new RelayError("unavailable", "relay is closing"), true);
  }

  private pickSlot(): Slot | null {
    const now = Date.now();
    for (let i = 0; i < this.slots.length; i++) {
      const slot = this.slots[(this.next + i) % this.slots.length]!;
      if (slot.call && slot.pending.size === 0 && now - slot.openedAt > this.maxAgeMs) this.retire(slot);
      if (slot.call) {
        this.next = (this.next + i + 1) % this.slots.length;
        return slot;
      }
      if (slot.retryAt <= now) {
        this.open(slot);
        this.next = (this.next + i + 1) % this.slots.length;
        return slot;
      }
    }
    return null;
  }

  /** Ends an idle stream gracefully; the slot opens a new one (maybe on another replica). */
  private retire(slot: Slot): void {
    const call = slot.call!;
    slot.call = null;
    call.removeAllListeners();
    call.on("error", () => {});
    call.end();
  }

  private open(slot: Slot): void {
    const fn = this.client.checkStream as () => grpc.ClientDuplexStream<unknown, CheckStreamResponse>;
    const call = fn.call(this.client);
    slot.call = call;
    slot.openedAt = Date.now();
    call.on("data", (msg: CheckStreamResponse) => {
      const r = msg.result;
      if (r.case === "response") {
        const p = slot.pending.get(r.value.requestId);
        if (!p) return; // answered after its deadline
        slot.pending.delete(r.value.requestId);
        clearTimeout(p.timer);
        p.resolve(r.value);
      } else if (r.case === "error") {
        const p = slot.pending.get(r.value.requestId);
        if (!p) return;
        slot.pending.delete(r.value.requestId);
        clearTimeout(p.timer);
        p.reject(new RelayError("invalid", `${r.value.code}: ${r.value.message}`));
      }
    });
    const broken = (why: string) => {
      if (slot.call === call) this.breakSlot(slot, new RelayError("unavailable", why), false);
    };
    call.on("error", (e: grpc.ServiceError) => broken(`check stream failed: ${e.details || e.message}`));
    call.on("end", () => broken("check stream ended"));
  }

  private breakSlot(slot: Slot, err: RelayError, closing: boolean): void {
    const call = slot.call;
    slot.call = null;
    if (!closing) slot.retryAt = Date.now() + this.reopenBackoffMs;
    for (const p of slot.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    slot.pending.clear();
    if (call) {
      call.removeAllListeners("data");
      call.on("error", () => {});
      call.cancel();
    }
  }
}
