import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
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
    expect(e4?.code).toBe(Code.NotFound);
    const bad: [Parameters<ReturnType<typeof client>["registerSession"]>[0], RegExp][] = [
      [{ rootPid: 5, workspace: "relative\\dir" }, /workspace must be an absolute Windows path/],
      [{ rootPid: 5, workspace: "/home/agent" }, /workspace must be an absolute Windows path/],
      [{ rootPid: 5, workspace: "  " }, /workspace must not be blank/],
      [{ rootPid: 5, workspace: "C:\\w\u0000x" }, /workspace contains a control character/],
      [
        { rootPid: 5, workspace: `C:\\${"a".repeat(40000)}` },
        /workspace is 40003 characters, more than 32767/,
      ],
      [{ rootPid: 5, workspace: "C:\\w", userProfile: "Users\\dev" }, /user_profile must be an absolute/],
      [{ rootPid: 5, workspace: "C:\\w", agent: "x".repeat(300) }, /agent is 300 characters/],
    ];
    for (const [req, why] of bad) {
      const e = await err(client().registerSession(req));
      expect(e?.code, String(why)).toBe(Code.InvalidArgument);
      expect(e?.rawMessage).toMatch(why);
    }
    expect(store.list()).toEqual([]);
  });

  it("one root process roots one session: a second one is ALREADY_EXISTS", async () => {
    const err = (p: Promise<unknown>) =>
      p.then(
        () => null,
        (e) => ConnectError.from(e),
      );
    const r = await client().registerSession({ token: 1n, rootPid: 4242, workspace: "C:\\w1" });
    const again = await err(client().registerSession({ token: 2n, rootPid: 4242, workspace: "C:\\w2" }));
    expect(again?.code).toBe(Code.AlreadyExists);
    expect(again?.rawMessage).toMatch(/root_pid 4242 already roots session 1/);
    const same = await err(client().registerSession({ token: 1n, rootPid: 7, workspace: "C:\\w" }));
    expect(same?.code).toBe(Code.AlreadyExists);
    await client().unregisterSession({ token: r.session!.token });
  });

  it("Connect JSON: a field the API does not have is refused, named", async () => {
    const post = (body: unknown) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const session = http2.connect("http://localhost", { createConnection: () => net.connect(path) });
        session.on("error", reject);
        const req = session.request({
          ":method": "POST",
          ":path": "/agentsh.v1.SessionService/RegisterSession",
          "content-type": "application/json",
        });
        let status = 0;
        let text = "";
        req.on("response", (h) => {
          status = Number(h[":status"]);
        });
        req.on("data", (d) => {
          text += d;
        });
        req.on("end", () => {
          session.close();
          resolve({ status, body: text });
        });
        req.end(JSON.stringify(body));
      });
    const r = await post({ rootPid: 77, workspace: "C:\\w77", userSID: "S-1-5-21-1-2-3-4" });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({
      code: "invalid_argument",
      message: expect.stringMatching(/userSID/),
    });
    expect(store.list().some((x) => x.rootPid === 77)).toBe(false);
  });

  it("refuses to start a second server on a live socket", async () => {
    await expect(serveLocal(path, sessionRoutes(backend))).rejects.toThrow(/already serves/);
  });
});

describe("the state file", () => {
  it("a state file that cannot be written leaves the sessions as they were", () => {
    const d = mkdtempSync(join(tmpdir(), "agentsh-state-"));
    const file = join(d, "sessions.json");
    const st = new SessionStore(file);
    st.add({ token: 1n, rootPid: 10, workspace: "C:\\a", userSid: "", userProfile: "", agent: "" });
    mkdirSync(`${file}.tmp`); // the write goes through this name: now it fails
    expect(() =>
      st.add({ token: 2n, rootPid: 11, workspace: "C:\\b", userSid: "", userProfile: "", agent: "" }),
    ).toThrow();
    expect(st.list().map((x) => x.token)).toEqual([1n]);
    expect(() => st.remove(1n)).toThrow();
    expect(st.list().map((x) => x.token)).toEqual([1n]);
  });

  it("entries that are not sessions are refused at load, with the entry named", () => {
    const d = mkdtempSync(join(tmpdir(), "agentsh-state-"));
    const file = join(d, "sessions.json");
    for (const [text, why] of [
      ["{}", /must be a JSON list/],
      ['[{"token":"5","workspace":"C:\\\\w"}]', /entry 0: root_pid must be a process id/],
      ['[{"token":"x","rootPid":5,"workspace":"C:\\\\w"}]', /entry 0: token must be a decimal string/],
      ['[{"token":"5","rootPid":5,"workspace":"rel"}]', /entry 0: workspace must be an absolute/],
    ] as const) {
      writeFileSync(file, text);
      expect(() => new SessionStore(file), text).toThrow(why);
    }
    // One without counters loads, its counters at zero.
    writeFileSync(file, '[{"token":"5","rootPid":5,"workspace":"C:\\\\w"}]');
    expect(new SessionStore(file).get(5n)?.counters.allow).toBe(0);
  });
});
