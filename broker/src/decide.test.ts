import { describe, expect, it } from "vitest";
import { Decider } from "./decide.js";
import type { FileRequest } from "./port/codec.js";
import { FileOp, MsgType } from "./port/protocol.js";
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
});
