/**
 * The policy server: connect-node serving gRPC, gRPC-Web and Connect on one port. Plaintext (the
 * default, for loopback) takes HTTP/2 with prior knowledge (gRPC) and HTTP/1.1 (gRPC-Web, Connect)
 * on the same port by looking at the first bytes of each connection; with a certificate and key it
 * is TLS with ALPN h2 and http/1.1. Shutdown stops accepting, ends watch streams, lets in-flight
 * calls finish (bounded by a grace period), then closes.
 */
import { setMaxListeners } from "node:events";
import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo, type Socket } from "node:net";
import { ApprovalService, health, PolicyService } from "@agentsh/proto";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { type ApprovalStore, MemoryApprovalStore, type MemoryStoreOptions } from "./approval-store.js";
import type { EngineOptions } from "./engine.js";
import { approvalService } from "./server-approvals.js";
import { healthService, policyService, type ServiceState } from "./server-services.js";
import { type Logger, PolicyStore, type ReloadResult, silentLogger } from "./server-store.js";
import { observeStore, telemetryInterceptor } from "./telemetry-metrics.js";

/** Responses smaller than this are never compressed, whatever the client accepts. */
export const RESPONSE_COMPRESS_MIN_BYTES = 256 * 1024;
export interface PolicyServerOptions {
  /** host:port; port 0 picks a free port. Default 127.0.0.1:7443. */
  address?: string | undefined;
  policyPath?: string | undefined;
  policyText?: string | undefined;
  /** PEM files (or PEM text) for TLS; both or neither. */
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  /** Watch policyPath and reload on change (default true when policyPath is given). */
  watch?: boolean | undefined;
  engine?: Omit<EngineOptions, "version"> | undefined;
  logger?: Logger | undefined;
  /** How long shutdown waits for in-flight calls before closing connections (default 5000 ms). */
  shutdownGraceMs?: number | undefined;
  /** Approval store, or bounds for the in-memory one (default). A given store is not closed. */
  approvals?: ApprovalStore | MemoryStoreOptions | undefined;
}

export interface PolicyServer {
  port: number;
  host: string;
  /** "http://127.0.0.1:port" or "https://..." */
  url: string;
  store: PolicyStore;
  approvals: ApprovalStore;
  reload(text?: string): ReloadResult;
  close(): Promise<void>;
}

export const DEFAULT_ADDRESS = "127.0.0.1:7443";
/**
 * Streams a client may hold open on one connection (Node's default is unbounded: a client opening
 * tens of thousands of idle streams ran the server out of memory). A broker uses a few.
 */
export const MAX_CONCURRENT_STREAMS = 256;
const H2_SETTINGS: http2.Settings = { maxConcurrentStreams: MAX_CONCURRENT_STREAMS };
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n");

export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address) ?? /^()()(\d+)$/.exec(address);
  if (!m) throw new Error(`address must be host:port, got ${address}`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port out of range in ${address}`);
  return { host: m[1] || m[2] || "127.0.0.1", port };
}

function pem(v: string): string | Buffer {
  return v.includes("-----BEGIN") ? v : readFileSync(v);
}

export async function startPolicyServer(opts: PolicyServerOptions): Promise<PolicyServer> {
  const log = opts.logger ?? silentLogger;
  const store = new PolicyStore({
    policyPath: opts.policyPath,
    policyText: opts.policyText,
    engine: opts.engine,
    logger: log,
  });
  const closing = new AbortController();
  // Every open stream and watcher listens to it: no "possible leak" warning past ten.
  setMaxListeners(0, closing.signal);
  const given = isApprovalStore(opts.approvals) ? opts.approvals : undefined;
  const approvals = given ?? new MemoryApprovalStore(opts.approvals as MemoryStoreOptions | undefined);
  const state: ServiceState = {
    store,
    serving: true,
    closing: closing.signal,
    inFlight: 0,
    onStatus: new Set(),
    approvals: { store: approvals, log, closing: closing.signal },
  };
  const handler = connectNodeAdapter({
    routes: (router) => {
      router.service(PolicyService, policyService(state));
      router.service(health.Health, healthService(state));
      router.service(ApprovalService, approvalService(state.approvals!));
    },
    grpc: true,
    grpcWeb: true,
    connect: true,
    readMaxBytes: 4 * 1024 * 1024,
    // JSON requests (Connect, gRPC-Web JSON) with a field the API does not have are refused, as the
    // protobuf JSON mapping asks by default: a misspelt field would otherwise be decided as absent.
    jsonOptions: { ignoreUnknownFields: false },
    // Decisions are latency work: a batch of 64 answers (about 10 KiB) is not worth compressing,
    // and a compressed one costs the broker a trip through zlib on libuv's pool (two thread
    // wake-ups) for every message. Compressed requests are still accepted.
    compressMinBytes: RESPONSE_COMPRESS_MIN_BYTES,
    interceptors: [telemetryInterceptor()],
  }) as (
    req: IncomingMessage | http2.Http2ServerRequest,
    res: ServerResponse | http2.Http2ServerResponse,
  ) => void;

  const { host, port } = parseAddress(opts.address ?? DEFAULT_ADDRESS);
  const sessions = new Set<http2.ServerHttp2Session>();
  const sockets = new Set<Socket>();
  let listener: net.Server;
  let h1: http.Server | undefined;
  let h2: http2.Http2Server | http2.Http2SecureServer;

  if (opts.tlsCert || opts.tlsKey) {
    if (!opts.tlsCert || !opts.tlsKey) throw new Error("TLS needs both a certificate and a key");
    h2 = http2.createSecureServer(
      { cert: pem(opts.tlsCert), key: pem(opts.tlsKey), allowHTTP1: true, settings: H2_SETTINGS },
      handler,
    );
    listener = h2;
  } else {
    h2 = http2.createServer({ settings: H2_SETTINGS }, handler);
    h1 = http.createServer(handler);
    h1.keepAliveTimeout = 5000;
    listener = net.createServer({ noDelay: true }, (socket) => {
      socket.once("data", (chunk: Buffer) => {
        socket.pause();
        socket.unshift(chunk);
        const isH2 = chunk
          .subarray(0, H2_PREFACE.length)
          .equals(H2_PREFACE.subarray(0, Math.min(chunk.length, H2_PREFACE.length)));
        // HTTP/2 takes the paused socket over, unshifted bytes included; HTTP/1 needs it flowing.
        (isH2 ? h2 : h1!).emit("connection", socket);
        if (!isH2) socket.resume();
      });
      socket.on("error", () => socket.destroy());
    });
  }
  h2.on("session", (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
    s.on("error", () => s.destroy());
  });
  listener.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  h2.on("sessionError", () => {});

  await new Promise<void>((resolveListen, reject) => {
    listener.once("error", reject);
    listener.listen(port, host, () => {
      listener.off("error", reject);
      resolveListen();
    });
  });
  if (opts.watch ?? opts.policyPath !== undefined) store.watch();
  const unobserve = observeStore(store);
  const addr = listener.address() as AddressInfo;
  const scheme = opts.tlsCert ? "https" : "http";
  const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  log.info("policy server listening", {
    address: `${shownHost}:${addr.port}`,
    tls: !!opts.tlsCert,
    version: store.current.version,
  });

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      state.serving = false;
      for (const f of state.onStatus) f();
      closing.abort();
      unobserve();
      store.close();
      if (!given) await approvals.close();
      const stopped = new Promise<void>((r) => listener.close(() => r()));
      for (const s of sessions) s.close();
      h1?.closeIdleConnections();
      const deadline = Date.now() + (opts.shutdownGraceMs ?? 5000);
      while ((state.inFlight > 0 || sessions.size > 0) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
        h1?.closeIdleConnections();
      }
      for (const s of sessions) s.destroy();
      h1?.closeAllConnections();
      for (const s of sockets) s.destroy();
      await stopped;
      log.info("policy server stopped");
    })();
    return closed;
  };
  return {
    port: addr.port,
    host: addr.address,
    url: `${scheme}://${shownHost}:${addr.port}`,
    store,
    approvals,
    reload: (text?: string) => store.reload(text),
    close,
  };
}

function isApprovalStore(v: ApprovalStore | MemoryStoreOptions | undefined): v is ApprovalStore {
  return typeof (v as ApprovalStore | undefined)?.open === "function";
}
