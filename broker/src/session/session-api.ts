// The broker's local sessions API: SessionService over Connect, gRPC and gRPC-Web on a Unix socket
// (a named pipe on Windows), for the agent runtime on this host and for `agentsh-broker session`.
// Only local: the socket is created owner-only (0600) and nothing listens on the network.
import { chmodSync, existsSync, unlinkSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { type SessionInfo, SessionInfoSchema, SessionService } from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, type ConnectRouter, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import { type Session, SessionError, type SessionInput } from "./session-store.js";

export interface SessionBackend {
  registerSession(input: SessionInput): Session;
  unregisterSession(token: bigint): Session;
  sessions: { list(): Session[] };
  processCounts: Map<bigint, number>;
}

export function toInfo(s: Session, processCount: number): SessionInfo {
  return create(SessionInfoSchema, {
    token: s.token,
    rootPid: s.rootPid,
    context: {
      token: s.token,
      workspace: s.workspace,
      userSid: s.userSid,
      userProfile: s.userProfile,
      agent: s.agent,
    },
    registeredAtMs: BigInt(s.registeredAtMs),
    processCount,
    counters: {
      allow: BigInt(s.counters.allow),
      deny: BigInt(s.counters.deny),
      approve: BigInt(s.counters.approve),
      audit: BigInt(s.counters.audit),
      failMode: BigInt(s.counters.failMode),
      stale: BigInt(s.counters.stale),
    },
  });
}

function asConnectError(e: unknown): ConnectError {
  if (e instanceof SessionError) {
    const code =
      e.kind === "exists" ? Code.AlreadyExists : e.kind === "missing" ? Code.NotFound : Code.InvalidArgument;
    return new ConnectError(e.message, code);
  }
  return new ConnectError((e as Error).message, Code.Unavailable);
}

export function sessionRoutes(b: SessionBackend) {
  return (router: ConnectRouter) =>
    router.service(SessionService, {
      registerSession(req) {
        try {
          const s = b.registerSession({
            token: req.token,
            rootPid: req.rootPid,
            workspace: req.workspace,
            userSid: req.userSid,
            userProfile: req.userProfile,
            agent: req.agent,
          });
          return { session: toInfo(s, b.processCounts.get(s.token) ?? 1) };
        } catch (e) {
          throw asConnectError(e);
        }
      },
      unregisterSession(req) {
        try {
          b.unregisterSession(req.token);
          return {};
        } catch (e) {
          throw asConnectError(e);
        }
      },
      listSessions() {
        return { sessions: b.sessions.list().map((s) => toInfo(s, b.processCounts.get(s.token) ?? 0)) };
      },
    });
}

export interface LocalServer {
  path: string;
  close(): Promise<void>;
}

/** Serves `routes` on a local socket path (removing a stale socket file first). */
export async function serveLocal(path: string, routes: (r: ConnectRouter) => void): Promise<LocalServer> {
  if (process.platform !== "win32" && existsSync(path)) {
    // A live broker answers on it; a dead one left the file behind.
    const alive = await new Promise<boolean>((resolve) => {
      const s = net.connect(path, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (alive) throw new Error(`another process already serves ${path}`);
    unlinkSync(path);
  }
  // Unknown JSON fields are refused (a misspelt userSID would register a session without a SID).
  const server = http2.createServer(
    connectNodeAdapter({ routes, jsonOptions: { ignoreUnknownFields: false } }),
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  if (process.platform !== "win32") chmodSync(path, 0o600);
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) s.close();
      }),
  };
}

/** A SessionService client over the local socket (gRPC transport). */
export function sessionClient(path: string): Client<typeof SessionService> {
  const transport = createGrpcTransport({
    baseUrl: "http://localhost",
    nodeOptions: { createConnection: () => net.connect(path) },
  });
  return createClient(SessionService, transport);
}
