// fltsim-koffi.test.ts - drives libfltsim.so through koffi with the fltuser.h signatures the broker
// uses on Windows (fltlib.dll): connect, FilterGetMessage (async, on a worker thread), reply,
// FilterSendMessage commands, QueryDosDeviceW, FilterClose unblocking a pending read.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import koffi from "koffi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const driverDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const build = join(driverDir, "build");
const portSock = join(tmpdir(), `agentsh-koffi-${process.pid}-port.sock`);
const ctlSock = join(tmpdir(), `agentsh-koffi-${process.pid}-ctl.sock`);

let sim: ChildProcess;
// biome-ignore lint/suspicious/noExplicitAny: koffi function handles
let api: Record<string, any>;

function control(line: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = connect(ctlSock, () => s.write(`${JSON.stringify(line)}\n`));
    let data = "";
    s.on("data", (d) => {
      data += d.toString();
      const nl = data.indexOf("\n");
      if (nl >= 0) {
        s.end();
        resolve(JSON.parse(data.slice(0, nl)));
      }
    });
    s.on("error", reject);
  });
}

async function waitFor(path: string) {
  for (let i = 0; i < 200 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 25));
}

beforeAll(async () => {
  if (!existsSync(join(build, "libfltsim.so")) || !existsSync(join(build, "agentsh-sim"))) {
    execFileSync("make", ["-C", driverDir, "build/agentsh-sim", "build/libfltsim.so"], { stdio: "inherit" });
  }
  sim = spawn(
    join(build, "agentsh-sim"),
    ["serve", "--port-socket", portSock, "--control-socket", ctlSock, "--no-audit"],
    {
      stdio: "ignore",
    },
  );
  await waitFor(ctlSock);
  process.env.AGENTSH_SIM_SOCKET = portSock;
  const lib = koffi.load(join(build, "libfltsim.so"));
  koffi.opaque("PORT");
  api = {
    connect: lib.func(
      "int32_t FilterConnectCommunicationPort(const char16_t *lpPortName, uint32_t dwOptions, const void *lpContext, uint16_t wSizeOfContext, void *lpSecurityAttributes, _Out_ PORT **hPort)",
    ),
    get: lib.func(
      "int32_t FilterGetMessage(PORT *hPort, _Out_ uint8_t *lpMessageBuffer, uint32_t dwMessageBufferSize, void *lpOverlapped)",
    ),
    reply: lib.func(
      "int32_t FilterReplyMessage(PORT *hPort, const uint8_t *lpReplyBuffer, uint32_t dwReplyBufferSize)",
    ),
    send: lib.func(
      "int32_t FilterSendMessage(PORT *hPort, const uint8_t *lpInBuffer, uint32_t dwInBufferSize, _Out_ uint8_t *lpOutBuffer, uint32_t dwOutBufferSize, _Out_ uint32_t *lpBytesReturned)",
    ),
    close: lib.func("int32_t FilterClose(PORT *hPort)"),
    qdd: lib.func(
      "uint32_t QueryDosDeviceW(const char16_t *lpDeviceName, _Out_ uint16_t *lpTargetPath, uint32_t ucchMax)",
    ),
  };
});

afterAll(async () => {
  sim?.kill("SIGTERM");
  rmSync(portSock, { force: true });
  rmSync(ctlSock, { force: true });
});

const hr = (v: number) => v >>> 0; // HRESULTs compared as unsigned

describe("libfltsim through koffi", () => {
  it("connects, answers a policy request, sends commands, unblocks on close", async () => {
    const ctx = Buffer.alloc(16);
    ctx.writeUInt32LE(0x48534741, 0);
    ctx.writeUInt32LE(1, 4);
    ctx.writeUInt32LE(process.pid, 8);
    const out: unknown[] = [null];
    expect(hr(api.connect("\\AgentshPort", 0, ctx, 16, null, out))).toBe(0);
    const port = out[0];

    // REGISTER_SESSION (40 bytes, no workspace) through FilterSendMessage
    const reg = Buffer.alloc(40);
    reg.writeUInt32LE(100, 0);
    reg.writeUInt32LE(40, 4);
    reg.writeBigUInt64LE(7n, 16);
    reg.writeUInt32LE(500, 24);
    const got = [0];
    expect(hr(api.send(port, reg, 40, Buffer.alloc(0), 0, got))).toBe(0);
    // a malformed command is rejected with E_INVALIDARG
    reg.writeUInt32LE(39, 4);
    expect(hr(api.send(port, reg, 40, Buffer.alloc(0), 0, got))).toBe(0x80070057);

    // the simulator's process issues a write; we answer DENY from a koffi worker thread
    const msg = Buffer.alloc(16 + 262144);
    const pending = new Promise<number>((resolve, reject) =>
      api.get.async(port, msg, msg.length, null, (err: Error | null, res: number) =>
        err ? reject(err) : resolve(res),
      ),
    );
    const decision = control({ cmd: "file", pid: 500, op: "write", path: "C:\\w\\a.c" });
    expect(hr(await pending)).toBe(0);
    expect(msg.readUInt32LE(0)).toBe(32); // FILTER_MESSAGE_HEADER.ReplyLength
    const messageId = msg.readBigUInt64LE(8);
    expect(msg.readUInt32LE(16)).toBe(1); // MSG_POLICY_CHECK_FILE
    const requestId = msg.readBigUInt64LE(24);
    const pathOff = msg.readUInt32LE(16 + 48);
    const pathLen = msg.readUInt32LE(16 + 52);
    expect(msg.subarray(16 + pathOff, 16 + pathOff + 2 * pathLen).toString("utf16le")).toBe(
      "\\Device\\HarddiskVolume3\\w\\a.c",
    );
    const rep = Buffer.alloc(48);
    rep.writeBigUInt64LE(messageId, 8);
    rep.writeUInt32LE(110, 16);
    rep.writeUInt32LE(32, 20);
    rep.writeBigUInt64LE(requestId, 24);
    rep.writeUInt32LE(1, 32); // DENY
    rep.writeUInt32LE(0xffffffff, 36); // AGENTSH_TTL_DEFAULT
    expect(hr(api.reply(port, rep, 48))).toBe(0);
    expect(await decision).toMatchObject({ result: "deny", source: "broker" });
    expect(hr(api.reply(port, rep, 48))).toBe(0x801f0020); // ERROR_FLT_NO_WAITER_FOR_REPLY
    expect(await control({ cmd: "file", pid: 500, op: "write", path: "c:/W/A.C" })).toMatchObject({
      source: "cache",
    });

    // GET_METRICS
    const gm = Buffer.alloc(16);
    gm.writeUInt32LE(105, 0);
    gm.writeUInt32LE(16, 4);
    const metrics = Buffer.alloc(184);
    expect(hr(api.send(port, gm, 16, metrics, 184, got))).toBe(0);
    expect(got[0]).toBe(184);
    expect(metrics.readBigUInt64LE(16)).toBe(1n); // CacheHitCount

    // QueryDosDeviceW answers from the simulator's volume table
    const target = new Uint16Array(64);
    const n = api.qdd("C:", target, 64);
    expect(Buffer.from(target.buffer, 0, (n - 2) * 2).toString("utf16le")).toBe("\\Device\\HarddiskVolume3");

    // FilterClose unblocks a pending FilterGetMessage with ERROR_OPERATION_ABORTED
    const blocked = new Promise<number>((resolve, reject) =>
      api.get.async(port, msg, msg.length, null, (err: Error | null, res: number) =>
        err ? reject(err) : resolve(res),
      ),
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(hr(api.close(port))).toBe(0);
    expect(hr(await blocked)).toBe(0x800703e3);
  });
});
