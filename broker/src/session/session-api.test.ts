import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalServer, serveLocal, sessionClient, sessionRoutes } from "./session-api.js";
import { SessionStore } from "./session-store.js";

const dir = mkdtempSync(join(tmpdir(), "agentsh-sessions-"));
const stateFile = join(dir, "state", "sessions.json");
const store = new SessionStore(stateFile);
const processCounts = new Map<bigint, number>();
const backend = {
  sessions: store,
  processCounts,
  registerSession: (i: Parameters<SessionStore["add"]>[0]) => {
    const s = store.add(i);
    processCounts.set(s.token, 1);
    return s;
  },
  unregisterSession: (t: bigint) => store.remove(t),
};
let server: LocalServer;
const path = join(dir, "broker.sock");

beforeAll(async () => {
  server = await serveLocal(path, sessionRoutes(backend));
});
afterAll(() => server.close());

describe("sessions API over the local socket", () => {
  const client = () => sessionClient(path);

  it("registers, lists with counts, and unregisters", async () => {
    const r = await client().registerSession({
      token: 42n,
      rootPid: 1000,
      workspace: "C:\\w",
      userSid: "S-1-5-21-1-2-3-1001",
      agent: "build",
    });
    expect(r.session?.token).toBe(42n);
    processCounts.set(42n, 3);
    const list = await client().listSessions({});
    expect(list.sessions.map((s) => [s.token, s.processCount, s.context?.workspace])).toEqual([
      [42n, 3, "C:\\w"],
    ]);
    await client().unregisterSession({ token: 42n });
    expect((await client().listSessions({})).sessions).toEqual([]);
  });

  it("chooses a token when none is given, and keeps sessions across a restart", async () => {
    const r = await client().registerSession({ rootPid: 7, workspace: "C:\\x" });
    expect(r.session!.token).not.toBe(0n);
    expect(new SessionStore(stateFile).get(r.session!.token)?.workspace).toBe("C:\\x");
    await client().unregisterSession({ token: r.session!.token });
  });

  it("answers bad requests with INVALID_ARGUMENT naming the field", async () => {
    const err = (p: Promise<unknown>) =>
      p.then(
        () => null,
        (e) => ConnectError.from(e),
      );
    const e1 = await err(client().registerSession({ rootPid: 0, workspace: "C:\\w" }));
    expect(e1?.code).toBe(Code.InvalidArgument);
    expect(e1?.rawMessage).toMatch(/root_pid/);
    const e2 = await err(client().registerSession({ rootPid: 5, workspace: "" }));
    expect(e2?.rawMessage).toMatch(/workspace/);
    const e3 = await err(client().registerSession({ rootPid: 5, workspace: "C:\\w", userSid: "bob" }));
    expect(e3?.rawMessage).toMatch(/user_sid/);
    const e4 = await err(client().unregisterSession({ token: 999n }));
    expect(e4?.code).toBe(Code.FailedPrecondition);
  });

  it("refuses to start a second server on a live socket", async () => {
    await expect(serveLocal(path, sessionRoutes(backend))).rejects.toThrow(/already serves/);
  });
});
