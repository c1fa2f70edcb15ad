// A pool of CheckStream calls, the broker's high-throughput path to the policy fleet. Each stream
// multiplexes many checks by request id; with round-robin load balancing each stream lands on a
// replica of its own, so checks spread over the fleet. A stream that breaks fails its in-flight
// checks with a retryable error (the relay retries them elsewhere) and is reopened on next use,
// after a short backoff.

import {
  CHECK_BATCH_HEADER,
  type CheckRequest,
  type CheckResponse,
  type CheckStreamRequest,
  type CheckStreamResponse,
} from "@agentsh/proto";
import type * as grpc from "@grpc/grpc-js";
import { RelayError } from "./relay-error.js";
import { PendingChecks } from "./relay-pending.js";

/** Most checks in one message (a fuller turn sends several). */
const MAX_BATCH = 64;
/** Checks in flight up to which a check is sent at once rather than batched. */
const LIGHT_LOAD = 2;

interface Pending {
  resolve: (r: CheckResponse) => void;
  reject: (e: RelayError) => void;
  timer: NodeJS.Timeout;
}

interface Slot {
  call: grpc.ClientDuplexStream<unknown, CheckStreamResponse> | null;
  /** By request id (relay-pending.ts: not a Map, which a check a time keeps reallocating). */
  pending: PendingChecks<Pending>;
  /** The server on this stream announced batches (CHECK_BATCH_HEADER). */
  batches: boolean;
  /** Checks waiting for this turn of the event loop to end, sent then as one message. */
  queue: CheckRequest[];
  /** Do not reopen before this time (after a stream broke). */
  retryAt: number;
  openedAt: number;
}

export class CheckStreams {
  private readonly slots: Slot[];
  private next = 0;
  /** The stream whose batch this turn of the event loop is filling. */
  private filling: Slot | null = null;
  /** The next check's request id (a number here; the uint64 on the wire). */
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly client: grpc.Client & Record<string, unknown>,
    count: number,
    private readonly maxAgeMs = 30_000,
    private readonly reopenBackoffMs = 200,
  ) {
    this.slots = Array.from({ length: Math.max(1, count) }, () => ({
      call: null,
      pending: new PendingChecks<Pending>(),
      batches: false,
      queue: [],
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
    // Within one turn of the event loop every check joins the batch already being filled; turns
    // take the streams in turn.
    const filling = this.filling;
    const slot = filling?.call && filling.queue.length < MAX_BATCH ? filling : this.pickSlot();
    if (!slot) return Promise.reject(new RelayError("unavailable", "every check stream is reconnecting"));
    const id = this.nextId++;
    return new Promise<CheckResponse>((resolve, reject) => {
      const wait = Math.max(0, deadline - Date.now());
      const timer = setTimeout(() => {
        slot.pending.take(id);
        reject(new RelayError("deadline", `no answer within ${wait} ms`));
      }, wait);
      slot.pending.add(id, { resolve, reject, timer });
      const check: CheckRequest = { ...req, requestId: BigInt(id) };
      // Light load (this check and at most one other in flight, nothing queued): no reason to wait.
      if (!slot.batches || (slot.queue.length === 0 && this.inFlight() <= LIGHT_LOAD)) {
        this.send(slot, check, []);
        return;
      }
      // Under load, checks that become ready in the same turn of the event loop (several driver
      // messages read at once, answers that release more) leave together, when the turn ends.
      slot.queue.push(check);
      if (slot.queue.length === 1) {
        this.filling = slot;
        setImmediate(() => this.flush(slot));
      }
    });
  }

  private flush(slot: Slot): void {
    if (this.filling === slot) this.filling = null;
    const q = slot.queue;
    if (q.length === 0) return;
    slot.queue = [];
    if (q.length === 1) this.send(slot, q[0]!, []);
    else this.send(slot, undefined, q);
  }

  private send(slot: Slot, check: CheckRequest | undefined, checks: CheckRequest[]): void {
    if (!slot.call) return; // the stream broke meanwhile: breakSlot rejected these checks
    // A literal, not create(): the compiled serialiser (relay-codec.ts) reads fields, not classes.
    const msg: CheckStreamRequest = { $typeName: "agentsh.v1.CheckStreamRequest", check, checks };
    slot.call.write(msg);
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
    slot.batches = false; // until this stream's server says so
    slot.openedAt = Date.now();
    call.on("metadata", (md: grpc.Metadata) => {
      if (slot.call === call && md.get(CHECK_BATCH_HEADER)[0] === "1") slot.batches = true;
    });
    // The check waiting for an answer (undefined when it was answered after its deadline).
    const take = (id: bigint): Pending | undefined => {
      const p = slot.pending.take(Number(id));
      if (p) clearTimeout(p.timer);
      return p;
    };
    const invalid = (e: { code: string; message: string }) =>
      new RelayError("invalid", `${e.code}: ${e.message}`);
    call.on("data", (msg: CheckStreamResponse) => {
      const r = msg.result;
      if (r.case === "response") take(r.value.requestId)?.resolve(r.value);
      else if (r.case === "error") take(r.value.requestId)?.reject(invalid(r.value));
      for (const x of msg.responses) take(x.requestId)?.resolve(x);
      for (const x of msg.errors) take(x.requestId)?.reject(invalid(x));
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
    for (const p of slot.pending.drain()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    slot.queue = [];
    if (call) {
      call.removeAllListeners("data");
      call.on("error", () => {});
      call.cancel();
    }
  }
}
