import { CheckRequestSchema, Kind, Operation } from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Decider } from "./decide.js";
import type { FileRequest } from "./port/codec.js";
import { FileOp, MsgType, RegOp } from "./port/protocol.js";
import type { Relay } from "./relay/relay.js";
import { SessionStore } from "./session/session-store.js";
import { VolumeMap } from "./volumes.js";

const volumes = VolumeMap.fromPairs([["C:", "\\Device\\HarddiskVolume3"]]);
const decider = new Decider({
  relay: {} as Relay,
  sessions: new SessionStore(),
  volumes,
  budgetMs: 100,
  host: "h",
});
const file = (path: string, renameDest = ""): FileRequest => ({
  type: MsgType.POLICY_CHECK_FILE,
  requestId: 1n,
  sessionToken: 7n,
  processId: 10,
  threadId: 11,
  operation: renameDest ? FileOp.RENAME : FileOp.WRITE,
  createDisposition: 0,
  desiredAccess: 0,
  flags: 0,
  path,
  renameDest,
  volume: "",
});

describe("decider: driver request -> policy check", () => {
  it("maps volumes to drive letters and sends no volume map then", () => {
    const c = decider.toCheck(
      file("\\Device\\HarddiskVolume3\\w\\a.c", "\\Device\\HarddiskVolume3\\w\\b.c"),
      undefined,
    );
    expect(c.path).toBe("C:\\w\\a.c");
    expect(c.renameDest).toBe("C:\\w\\b.c");
    expect(c.volumes).toEqual([]);
  });

  it("sends the volume map when a path is still named by a device it could not map", () => {
    const c = decider.toCheck(file("\\device\\HarddiskVolume9\\x"), undefined);
    expect(c.path).toBe("\\device\\HarddiskVolume9\\x");
    expect(c.volumes.map((v) => [v.drive, v.device])).toEqual([["C:", "\\Device\\HarddiskVolume3"]]);
  });

  it("builds the message create() builds, field for field (file and registry, with a session)", () => {
    const sessions = new SessionStore();
    const s = sessions.add({
      token: 7n,
      rootPid: 10,
      workspace: "C:\\w",
      userSid: "S-1-5-21-1",
      userProfile: "",
      agent: "a",
    });
    const d = new Decider({ relay: {} as Relay, sessions, volumes, budgetMs: 100, host: "h" });
    const session = {
      token: 7n,
      workspace: "C:\\w",
      userSid: "S-1-5-21-1",
      userProfile: "",
      agent: "a",
      host: "h",
    };
    expect(d.toCheck(file("\\device\\HarddiskVolume9\\x"), s)).toStrictEqual(
      create(CheckRequestSchema, {
        kind: Kind.FILE,
        operation: Operation.WRITE,
        path: "\\device\\HarddiskVolume9\\x",
        session,
        pid: 10,
        volumes: [{ drive: "C:", device: "\\Device\\HarddiskVolume3" }],
        driverOperation: FileOp.WRITE,
      }),
    );
    const reg = {
      type: MsgType.POLICY_CHECK_REGISTRY,
      requestId: 2n,
      sessionToken: 7n,
      processId: 10,
      threadId: 11,
      operation: RegOp.RENAME_KEY,
      valueType: 1,
      dataSize: 0,
      reserved: 0,
      keyPath: "\\REGISTRY\\MACHINE\\SOFTWARE\\a",
      valueName: "v",
      newName: "b",
    } as Parameters<Decider["toCheck"]>[0];
    expect(d.toCheck(reg, s)).toStrictEqual(
      create(CheckRequestSchema, {
        kind: Kind.REGISTRY,
        operation: Operation.RENAME,
        path: "\\REGISTRY\\MACHINE\\SOFTWARE\\a",
        renameDest: "\\REGISTRY\\MACHINE\\SOFTWARE\\b",
        valueName: "v",
        session,
        pid: 10,
        driverOperation: RegOp.RENAME_KEY,
        valueType: 1,
      }),
    );
  });
});
