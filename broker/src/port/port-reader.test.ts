// The port reader through the broker's fltlib binding and the real simulator: overlapped reads
// re-issued as they complete, every message delivered once, the memory released only after the
// pending reads were cancelled, and a lost port reported once.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SimHandle, startSim, waitFor } from "../../../test/e2e/harness.js";
import { decodePortMessage, encodeReply } from "./codec.js";
import { DEFAULT_SIM_LIBRARY, type FltLib, loadFltLib } from "./port-fltlib.js";
import { PortReader } from "./port-reader.js";
import { CONNECT_MAGIC, Decision, Layouts, MsgType, PROTOCOL_VERSION, Ttl } from "./protocol.js";

const driverDir = join(import.meta.dirname, "../../../driver");
const dir = mkdtempSync(join(tmpdir(), "agentsh-reader-"));
let sim: SimHandle;
let lib: FltLib;

/** The real binding, counting what the reader releases. */
function counted(): { lib: FltLib; released: { ports: number; memory: number } } {
  const released = { ports: 0, memory: 0 };
  return {
    released,
    lib: {
      ...lib,
      closeCompletionPort(port) {
        released.ports++;
        lib.closeCompletionPort(port);
      },
      alloc(size) {
        const m = lib.alloc(size);
        const free = () => {
          released.memory++;
          m.free();
        };
        return { address: m.address, bytes: m.bytes, free };
      },
    },
  };
}

function connectPort(): bigint {
  const ctx = Buffer.alloc(Layouts.connectContext.size);
  ctx.writeUInt32LE(CONNECT_MAGIC, 0);
  ctx.writeUInt32LE(PROTOCOL_VERSION, 4);
  ctx.writeUInt32LE(process.pid, 8);
  const { hr, handle } = lib.connect("\\AgentshPort", ctx);
  expect(hr >>> 0).toBe(0);
  return handle;
}

beforeAll(async () => {
  if (!existsSync(DEFAULT_SIM_LIBRARY) || !existsSync(join(driverDir, "build/agentsh-sim"))) {
    execFileSync("make", ["-C", driverDir, "build/agentsh-sim", "build/libfltsim.so"], { stdio: "inherit" });
  }
  sim = await startSim(dir, ["--no-audit"]);
  process.env.AGENTSH_SIM_SOCKET = sim.portSocket;
  lib = loadFltLib(DEFAULT_SIM_LIBRARY);
  expect(await sim.ctl.request({ cmd: "register", token: 9, root: 700, workspace: "C:\\w" })).toMatchObject({
    ok: true,
  });
});

afterAll(async () => {
  await sim?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("PortReader", () => {
  it("refuses a read count out of range", () => {
    expect(() => new PortReader(lib, 1n, 0, { onMessage() {}, onLost() {} })).toThrow(/1\.\.64, got 0/);
    expect(() => new PortReader(lib, 1n, 65, { onMessage() {}, onLost() {} })).toThrow(/1\.\.64, got 65/);
  });

  it("fails clearly when the handle cannot be associated with a completion port", () => {
    expect(() => new PortReader(lib, 12345n, 4, { onMessage() {}, onLost() {} })).toThrow(
      /CreateIoCompletionPort failed/,
    );
  });

  it("answers more concurrent requests than reads pending, then releases its memory after close", async () => {
    const { lib: l, released } = counted();
    const handle = connectPort();
    const seen = new Set<bigint>();
    const lost: unknown[] = [];
    const reader = new PortReader(l, handle, 3, {
      onMessage(bytes) {
        const r = decodePortMessage(bytes);
        if (!r.ok) throw r.error;
        const { message, messageId } = r.value;
        expect(message.type).toBe(MsgType.POLICY_CHECK_FILE);
        expect(seen.has(messageId)).toBe(false);
        seen.add(messageId);
        const rep = encodeReply(messageId, {
          requestId: message.requestId,
          decision: Decision.DENY,
          cacheTTLMs: Ttl.NO_CACHE,
          flags: 0,
          reserved: 0,
        });
        expect(lib.reply(handle, rep) >>> 0).toBe(0);
      },
      onLost: (where, code) => lost.push([where, code]),
    });
    reader.start();
    const answers = await Promise.all(
      Array.from({ length: 24 }, (_, i) => sim.ctl.file(700, "write", `C:\\w\\f${i}.c`)),
    );
    for (const a of answers) expect(a).toMatchObject({ result: "deny", source: "broker" });
    expect(seen.size).toBe(24);

    // closing cancels the three pending reads; only then is the memory released
    reader.stop();
    expect(released).toEqual({ ports: 0, memory: 0 });
    lib.close(handle);
    await waitFor("the reader's release", () => released.memory === 1);
    expect(released).toEqual({ ports: 1, memory: 1 });
    expect(lost).toEqual([]);
  });

  it("reports a lost port once, with the status the pending reads completed with", async () => {
    const { lib: l, released } = counted();
    const handle = connectPort();
    const lost: [string, number][] = [];
    const reader = new PortReader(l, handle, 4, { onMessage() {}, onLost: (w, c) => lost.push([w, c]) });
    reader.start();
    await sim.stop(); // the simulator goes away with four reads pending
    await waitFor("the lost port", () => lost.length > 0);
    expect(lost).toEqual([["FilterGetMessage completion", 0xc0000037]]); // STATUS_PORT_DISCONNECTED
    reader.stop();
    lib.close(handle);
    await waitFor("the reader's release", () => released.memory === 1);
    expect(released.ports).toBe(1);
  });
});
