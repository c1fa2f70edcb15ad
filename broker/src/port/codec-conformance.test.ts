// Conformance, not self-agreement: the TypeScript layout and bytes are compared with what a C
// compiler makes of driver/inc/protocol.h.
import { execFileSync } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeMessage, encodeMessage, type Message } from "./codec.js";
import { assertUnit, compileC, compileOnly, goldenProgram, layoutProgram } from "./codec-c-harness.js";
import { SAMPLES } from "./codec-samples.js";
import { C_CONSTANTS, LAYOUT_OF_TYPE, Layouts, PortLayouts, TRAILING_OF_TYPE } from "./protocol.js";

const SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"];

function hasCompiler(cc: string): boolean {
  try {
    execFileSync(cc, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** The JSON shape the C decoder prints: u64 as decimal strings, strings as UTF-16 code units. */
function asCJson(msg: Message): Record<string, unknown> {
  const layout = LAYOUT_OF_TYPE[msg.type];
  const values = msg as unknown as Record<string, unknown>;
  const trailing = TRAILING_OF_TYPE[msg.type];
  const out: Record<string, unknown> = { type: msg.type, requestId: msg.requestId.toString() };
  for (const f of layout.fields) {
    const v = values[f.ts];
    if (f.kind === "header") continue;
    if (trailing && f.c === "Count") out.count = (values[trailing.ts] as unknown[]).length;
    else if (f.kind === "u64") out[f.ts] = (v as bigint).toString();
    else if (f.kind === "string")
      out[f.ts] = Array.from({ length: (v as string).length }, (_, i) => (v as string).charCodeAt(i));
    else out[f.ts] = v;
  }
  if (trailing) {
    const item = trailing.item;
    out[trailing.ts] = (values[trailing.ts] as unknown[]).map((e) =>
      item === "u32"
        ? e
        : Object.fromEntries(
            Object.entries(e as Record<string, unknown>).map(([k, v]) => [
              k,
              typeof v === "bigint" ? v.toString() : v,
            ]),
          ),
    );
  }
  return out;
}

describe("protocol.h conformance (gcc, x86_64 Linux)", () => {
  let c: {
    structs: Record<string, { size: number; fields: Record<string, number> }>;
    constants: Record<string, number>;
  };
  beforeAll(() => {
    const exe = compileC(layoutProgram(), "layout");
    c = JSON.parse(execFileSync(exe, { encoding: "utf8" }));
  });

  it.each(Object.values(Layouts).map((l) => [l.c, l] as const))(
    "%s: size and every field offset equal C's",
    (_n, l) => {
      const cs = c.structs[l.c]!;
      expect(cs.size).toBe(l.size);
      expect(Object.fromEntries(l.fields.map((f) => [f.c, f.offset]))).toEqual(cs.fields);
    },
  );

  it("port framing structs equal C's", () => {
    for (const p of Object.values(PortLayouts)) {
      expect(c.structs[p.c]).toEqual({ size: p.size, fields: p.fields });
    }
  });

  it("every constant equals C's", () => {
    expect(c.constants).toEqual(C_CONSTANTS);
  });

  it("the fields of each struct tile it with no gap (so no C field can be missing from the table)", () => {
    for (const l of Object.values(Layouts)) {
      let end = 0;
      for (const f of l.fields) {
        expect(f.offset).toBe(end);
        end = f.offset + { u32: 4, i32: 4, u64: 8, string: 8, header: 16 }[f.kind];
      }
      expect(end).toBe(l.size);
    }
  });
});

// In CI the cross compiler is installed by test/setup/ensure.mjs, so a missing one fails there.
describe.runIf(hasCompiler("x86_64-w64-mingw32-gcc") || process.env.CI === "true")(
  "protocol.h conformance (mingw-w64, real Windows headers)",
  () => {
    it("the TypeScript layout holds as static assertions against windows.h + fltuser.h", () => {
      expect(() => compileOnly(assertUnit(), "asserts", "x86_64-w64-mingw32-gcc")).not.toThrow();
    });

    it("a wrong offset would fail to compile (the check can fail)", () => {
      const broken = assertUnit().replace(
        "offsetof(AGENTSH_FILE_REQUEST, Path) == 48",
        "offsetof(AGENTSH_FILE_REQUEST, Path) == 52",
      );
      expect(broken).not.toBe(assertUnit());
      expect(() => compileOnly(broken, "asserts-broken", "x86_64-w64-mingw32-gcc")).toThrow();
    });
  },
);

describe("golden vectors", () => {
  let exe: string;
  beforeAll(() => {
    exe = compileC(goldenProgram(SAMPLES), "golden", "gcc", SANITIZE);
  });

  it("bytes built by C are byte-identical to TypeScript's and decode to the same message", () => {
    const lines = execFileSync(exe, ["encode"], { encoding: "utf8" }).trim().split("\n");
    expect(lines).toHaveLength(SAMPLES.length);
    SAMPLES.forEach((msg, i) => {
      const cBytes = Buffer.from(lines[i]!, "hex");
      expect(cBytes.toString("hex"), `sample ${i} type ${msg.type}`).toBe(encodeMessage(msg).toString("hex"));
      const r = decodeMessage(cBytes);
      expect(r.ok && r.value).toEqual(msg);
    });
  });

  it("bytes built by TypeScript are read by C through the structs to the same values", () => {
    const input = `${SAMPLES.map((m) => encodeMessage(m).toString("hex")).join("\n")}\n`;
    const lines = execFileSync(exe, ["decode"], { input, encoding: "utf8" }).trim().split("\n");
    expect(lines).toHaveLength(SAMPLES.length);
    SAMPLES.forEach((msg, i) => {
      expect(JSON.parse(lines[i]!), `sample ${i} type ${msg.type}`).toEqual(asCJson(msg));
    });
  });

  it("C rejects what TypeScript rejects: a string without terminator", () => {
    const b = encodeMessage(SAMPLES[0]!);
    b.writeUInt16LE(0x41, b.length - 2);
    expect(decodeMessage(b).ok).toBe(false);
    expect(execFileSync(exe, ["decode"], { input: `${b.toString("hex")}\n`, encoding: "utf8" }).trim()).toBe(
      '{"error":"invalid"}',
    );
  });
});
