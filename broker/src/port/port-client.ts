// The broker's side of the filter port. Connects with the protocol version in the connection
// context, keeps several overlapped FilterGetMessage calls pending (port-reader.ts) so the driver
// never waits for a reader, answers policy requests with FilterReplyMessage, sends commands with
// FilterSendMessage, and reconnects with backoff when the port is lost. At every connect it
// excludes its own pid and pushes the driver config, then calls onConnected (sessions are
// registered again there).
import { EventEmitter } from "node:events";
import {
  type AuditEvent,
  type DecisionCountsReply,
  type DecisionEvent,
  decodeMessage,
  decodePortMessage,
  encodeMessage,
  encodeReply,
  type FileRequest,
  type Message,
  type MetricsReply,
  type Pong,
  type ProcessEvent,
  type RegistryRequest,
  type SetConfig,
} from "./codec.js";
import { CodecError } from "./codec-error.js";
import type { FltLib } from "./port-fltlib.js";
import { describeHr, HR, hresult, isPortLost, succeeded } from "./port-hresult.js";
import { MAX_PENDING_READS, PortReader } from "./port-reader.js";
import {
  CONNECT_MAGIC,
  DECISION_COUNTS_MAX_SIZE,
  Decision,
  ExcludeAction,
  Layouts,
  MsgType,
  PORT_NAME,
  PROTOCOL_VERSION,
  Ttl,
} from "./protocol.js";

export type DriverConfig = Omit<SetConfig, "type" | "requestId">;
export type DriverRequest = FileRequest | RegistryRequest;
export type DriverEvent = ProcessEvent | AuditEvent | DecisionEvent;

export interface ReplyFields {
  decision: number;
  cacheTTLMs: number;
}

export interface PortClientOptions {
  lib: FltLib;
  portName?: string;
  /** Overlapped FilterGetMessage calls kept pending on the port. */
  readers: number;
  config: DriverConfig;
  /** Pids the driver must not filter; the broker's own pid is always added. */
  excludePids?: number[];
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  /** Answers a policy request. Must not throw; if it does, `fallback` answers. */
  onRequest: (req: DriverRequest) => Promise<ReplyFields>;
  onEvent?: (ev: DriverEvent) => void;
  onConnected?: () => void | Promise<void>;
  /** Answer used for a malformed request or a throwing onRequest (the fail mode's decision). */
  fallback: ReplyFields;
}

export interface PortStats {
  connected: boolean;
  connects: number;
  reconnects: number;
  received: number;
  replies: number;
  lateReplies: number;
  replyFailures: number;
  malformed: number;
  lastError: string;
}

export class PortError extends Error {
  override readonly name = "PortError";
  constructor(
    message: string,
    readonly hr: number,
  ) {
    super(`${message}: ${describeHr(hr)}`);
  }
}

export class PortClient extends EventEmitter {
  private handle: bigint | null = null;
  private reader: PortReader | null = null;
  private stopping = false;
  private reconnecting: Promise<void> | null = null;
  private nextRequestId = 1n;
  private generation = 0;
  readonly stats: PortStats = {
    connected: false,
    connects: 0,
    reconnects: 0,
    received: 0,
    replies: 0,
    lateReplies: 0,
    replyFailures: 0,
    malformed: 0,
    lastError: "",
  };

  constructor(private readonly opts: PortClientOptions) {
    super();
    if (!Number.isInteger(opts.readers) || opts.readers < 1 || opts.readers > MAX_PENDING_READS) {
      throw new Error(`port readers must be 1..${MAX_PENDING_READS}, got ${opts.readers}`);
    }
  }

  get connected(): boolean {
    return this.handle !== null;
  }

  /** Connects (retrying with backoff until it works or stop() is called). */
  async start(): Promise<void> {
    this.stopping = false;
    await this.connectWithBackoff();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.disconnect();
  }

  // -- commands ------------------------------------------------------------------------------

  /** Sends a command; resolves with the output bytes. Throws PortError on a failed HRESULT. */
  command(msg: Message, outputSize = 0): Buffer {
    const h = this.handle;
    if (h === null) throw new PortError("not connected to the driver", HR.ERROR_INVALID_HANDLE);
    const out = outputSize ? Buffer.alloc(outputSize) : null;
    const { hr, bytesReturned } = this.opts.lib.send(h, encodeMessage(msg), out);
    if (!succeeded(hr)) {
      if (isPortLost(hr)) this.portLost(`command ${msg.type}`, hr);
      throw new PortError(`FilterSendMessage(type ${msg.type})`, hr);
    }
    return out ? out.subarray(0, bytesReturned) : Buffer.alloc(0);
  }

  setConfig(config: DriverConfig): void {
    this.command({ ...config, type: MsgType.SET_CONFIG, requestId: this.id() });
  }

  exclude(pids: number[], action: number = ExcludeAction.ADD): void {
    this.command({ type: MsgType.EXCLUDE_PROCESS, requestId: this.id(), action, processIds: pids });
  }

  registerSession(sessionToken: bigint, rootProcessId: number, workspacePath: string): void {
    this.command({
      type: MsgType.REGISTER_SESSION,
      requestId: this.id(),
      sessionToken,
      rootProcessId,
      flags: 0,
      workspacePath,
    });
  }

  unregisterSession(sessionToken: bigint): void {
    this.command({ type: MsgType.UNREGISTER_SESSION, requestId: this.id(), sessionToken });
  }

  updateCache(scope: number, kind: number, sessionToken: bigint, pathPrefix: string): void {
    this.command({ type: MsgType.UPDATE_CACHE, requestId: this.id(), scope, kind, sessionToken, pathPrefix });
  }

  getMetrics(): MetricsReply {
    const out = this.command({ type: MsgType.GET_METRICS, requestId: this.id() }, Layouts.metrics.size);
    const r = decodeMessage(out);
    if (!r.ok) throw r.error;
    if (r.value.type !== MsgType.METRICS_REPLY)
      throw new CodecError("unknown_type", `GET_METRICS answered type ${r.value.type}`);
    return r.value;
  }

  /**
   * GET_DECISION_COUNTS: the decisions the driver made without the broker's answer, by source, kind,
   * operation and decision. A PortError with HR.ERROR_NOT_SUPPORTED from a driver without it.
   */
  getDecisionCounts(): DecisionCountsReply {
    const out = this.command(
      { type: MsgType.GET_DECISION_COUNTS, requestId: this.id() },
      DECISION_COUNTS_MAX_SIZE,
    );
    const r = decodeMessage(out);
    if (!r.ok) throw r.error;
    if (r.value.type !== MsgType.DECISION_COUNTS_REPLY)
      throw new CodecError("unknown_type", `GET_DECISION_COUNTS answered type ${r.value.type}`);
    return r.value;
  }

  ping(): Pong {
    const out = this.command(
      { type: MsgType.PING, requestId: this.id(), timestamp: BigInt(Date.now()) },
      Layouts.pong.size,
    );
    const r = decodeMessage(out);
    if (!r.ok) throw r.error;
    if (r.value.type !== MsgType.PONG)
      throw new CodecError("unknown_type", `PING answered type ${r.value.type}`);
    return r.value;
  }

  // -- connection ----------------------------------------------------------------------------

  private id(): bigint {
    return this.nextRequestId++;
  }

  private async connectWithBackoff(): Promise<void> {
    let wait = this.opts.reconnectInitialMs ?? 100;
    const max = this.opts.reconnectMaxMs ?? 5000;
    for (;;) {
      if (this.stopping) return;
      try {
        await this.connectOnce();
        return;
      } catch (e) {
        this.stats.lastError = (e as Error).message;
        this.emit("connectError", e);
      }
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(max, wait * 2);
    }
  }

  private async connectOnce(): Promise<void> {
    const ctx = Buffer.alloc(Layouts.connectContext.size);
    ctx.writeUInt32LE(CONNECT_MAGIC, 0);
    ctx.writeUInt32LE(PROTOCOL_VERSION, 4);
    ctx.writeUInt32LE(process.pid, 8);
    const { hr, handle } = this.opts.lib.connect(this.opts.portName ?? PORT_NAME, ctx);
    if (!succeeded(hr)) throw new PortError("FilterConnectCommunicationPort", hr);
    this.handle = handle;
    this.generation++;
    try {
      this.exclude([process.pid, ...(this.opts.excludePids ?? [])]);
      this.setConfig(this.opts.config);
      await this.opts.onConnected?.();
      this.startReaders(handle, this.generation);
    } catch (e) {
      this.closeHandle();
      throw e;
    }
    this.stats.connected = true;
    this.stats.connects++;
    this.emit("connected");
  }

  /** The pending reads of this connection; a message goes to onPortMessage, a failure reconnects. */
  private startReaders(handle: bigint, gen: number): void {
    const reader = new PortReader(this.opts.lib, handle, this.opts.readers, {
      onMessage: (bytes) => this.onPortMessage(bytes, handle),
      onLost: (where, code) => {
        if (gen === this.generation && this.handle !== null && !this.stopping) this.portLost(where, code);
      },
    });
    this.reader = reader;
    reader.start();
  }

  private onPortMessage(bytes: Uint8Array, handle: bigint): void {
    this.stats.received++;
    const r = decodePortMessage(bytes);
    if (!r.ok) {
      this.stats.malformed++;
      this.emit("malformed", r.error);
      // The driver is waiting on this message id (ReplyLength is in the readable port header):
      // answer it rather than let it time out.
      const replyLength =
        bytes.length >= 4 ? new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true) : 0;
      if (r.error.messageId !== undefined && replyLength > 0)
        this.reply(handle, r.error.messageId, 0n, this.opts.fallback);
      return;
    }
    const { message, messageId, replyLength } = r.value;
    if (message.type === MsgType.POLICY_CHECK_FILE || message.type === MsgType.POLICY_CHECK_REGISTRY) {
      if (replyLength === 0) return; // nobody waits for an answer
      this.opts.onRequest(message).then(
        (fields) => this.reply(handle, messageId, message.requestId, fields),
        (e) => {
          this.stats.lastError = `onRequest: ${(e as Error).message}`;
          this.reply(handle, messageId, message.requestId, this.opts.fallback);
        },
      );
    } else if (
      message.type === MsgType.PROCESS_CREATED ||
      message.type === MsgType.PROCESS_TERMINATED ||
      message.type === MsgType.AUDIT_EVENT ||
      message.type === MsgType.DECISION_EVENT
    ) {
      this.opts.onEvent?.(message);
    } else {
      this.stats.malformed++;
      this.emit(
        "malformed",
        new CodecError("unknown_type", `type ${message.type} is not sent by the driver`),
      );
      if (replyLength > 0) this.reply(handle, messageId, message.requestId, this.opts.fallback);
    }
  }

  private reply(handle: bigint, messageId: bigint, requestId: bigint, fields: ReplyFields): void {
    if (this.handle !== handle) return; // the port this came from is gone; its driver gave up
    const buf = encodeReply(messageId, {
      requestId,
      decision: fields.decision,
      cacheTTLMs: fields.cacheTTLMs,
      flags: 0,
      reserved: 0,
    });
    // FilterReplyMessage completes at once (the kernel hands the reply to the waiting sender; the
    // simulator's library does the same through shared memory), so it runs here, on the main thread.
    const hr = hresult(this.opts.lib.reply(handle, buf));
    if (hr === HR.S_OK) this.stats.replies++;
    else if (hr === HR.ERROR_FLT_NO_WAITER_FOR_REPLY) {
      this.stats.lateReplies++; // the driver timed out first: counted, not fatal
      this.emit("lateReply", messageId);
    } else {
      this.stats.replyFailures++;
      this.stats.lastError = `FilterReplyMessage: ${describeHr(hr)}`;
      if (isPortLost(hr)) this.portLost("FilterReplyMessage", hr);
    }
  }

  private portLost(where: string, hr: number): void {
    if (this.stopping || this.reconnecting) return;
    this.stats.lastError = `${where}: ${describeHr(hr)}`;
    this.stats.reconnects++;
    this.emit("disconnected", this.stats.lastError);
    this.reconnecting = (async () => {
      await this.disconnect();
      await this.connectWithBackoff();
    })().finally(() => {
      this.reconnecting = null;
    });
  }

  private closeHandle(): void {
    const h = this.handle;
    this.handle = null;
    this.stats.connected = false;
    this.reader?.stop();
    this.reader = null;
    if (h !== null) {
      this.opts.lib.cancel(h);
      this.opts.lib.close(h);
    }
  }

  private async disconnect(): Promise<void> {
    this.generation++;
    // Closing the handle cancels the pending reads; the reader frees their memory when they complete.
    this.closeHandle();
  }
}

/** The reply that a decision and a TTL make; pending is denied and never cached. */
export function replyFor(allow: boolean, ttlMs: number): ReplyFields {
  return {
    decision: allow ? Decision.ALLOW : Decision.DENY,
    cacheTTLMs: ttlMs > 0 ? Math.min(ttlMs, 0xfffffffe) : Ttl.NO_CACHE,
  };
}
