// Test support: C programs generated from the TypeScript layout table and compiled against
// driver/inc/protocol.h, so that the C compiler (not TypeScript) says where every byte goes.
//   layout program  -> prints sizeof/offsetof of every struct and field, and every constant, as JSON
//   assert unit     -> the same facts as _Static_assert, compiled by mingw-w64 against Windows headers
//   golden program  -> `encode`: builds every sample message with C struct assignments, prints hex
//                      `decode`: reads hex messages, reads them through the C structs, prints JSON
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Message } from "./codec.js";
import {
  C_CONSTANTS,
  itemSize,
  LAYOUT_OF_TYPE,
  Layouts,
  type MsgType,
  PortLayouts,
  type StructLayout,
  TRAILING_OF_TYPE,
} from "./protocol.js";

export const DRIVER_INC = resolve(import.meta.dirname, "../../../driver/inc");

const STRUCTS: StructLayout[] = Object.values(Layouts);

/** C expression for a field of a struct variable `m` (header fields live in m->Header). */
function cField(layout: StructLayout, field: string): string {
  return layout.c === "AGENTSH_MESSAGE_HEADER"
    ? field
    : field === "Type" || field === "Size" || field === "RequestId"
      ? `Header.${field}`
      : field;
}

export function layoutProgram(): string {
  const lines: string[] = [
    "#include <stdio.h>",
    '#include "protocol.h"',
    "int main(void) {",
    '  printf("{\\"structs\\":{");',
  ];
  const all: Array<{ c: string; fields: string[] }> = [
    ...STRUCTS.map((s) => ({ c: s.c, fields: s.fields.map((f) => f.c) })),
    ...Object.values(PortLayouts).map((p) => ({ c: p.c, fields: Object.keys(p.fields) })),
  ];
  all.forEach((s, i) => {
    lines.push(
      `  printf("%s\\"${s.c}\\":{\\"size\\":%u,\\"fields\\":{", ${i ? '","' : '""'}, (unsigned)sizeof(${s.c}));`,
    );
    s.fields.forEach((f, j) => {
      lines.push(`  printf("%s\\"${f}\\":%u", ${j ? '","' : '""'}, (unsigned)offsetof(${s.c}, ${f}));`);
    });
    lines.push('  printf("}}");');
  });
  lines.push('  printf("},\\"constants\\":{");');
  Object.keys(C_CONSTANTS).forEach((name, i) => {
    lines.push(`  printf("%s\\"${name}\\":%llu", ${i ? '","' : '""'}, (unsigned long long)(${name}));`);
  });
  lines.push('  printf("}}\\n");', "  return 0;", "}");
  return lines.join("\n");
}

/** Static assertions of the TypeScript layout, for compilers whose output cannot run here. */
export function assertUnit(): string {
  const lines = ['#include "protocol.h"', "#include <stddef.h>"];
  let n = 0;
  const sa = (e: string) => lines.push(`_Static_assert(${e}, "ts layout ${n++}");`);
  for (const s of STRUCTS) {
    sa(`sizeof(${s.c}) == ${s.size}`);
    for (const f of s.fields) sa(`offsetof(${s.c}, ${f.c}) == ${f.offset}`);
  }
  for (const p of Object.values(PortLayouts)) {
    sa(`sizeof(${p.c}) == ${p.size}`);
    for (const [f, off] of Object.entries(p.fields)) sa(`offsetof(${p.c}, ${f}) == ${off}`);
  }
  for (const [name, v] of Object.entries(C_CONSTANTS)) sa(`(unsigned long long)(${name}) == ${v}ULL`);
  return lines.join("\n");
}

function cLiteral(kind: string, v: unknown): string {
  if (kind === "u64") return `0x${(v as bigint).toString(16)}ULL`;
  if (kind === "i32") return `(INT32)(${v as number})`;
  return `${v as number}u`;
}

function unitsOf(s: string): string {
  const units: number[] = [];
  for (let i = 0; i < s.length; i++) units.push(s.charCodeAt(i));
  return units.length ? `{${units.join(",")}}` : "{0}";
}

export function goldenProgram(samples: readonly Message[]): string {
  const out: string[] = [
    "#define _POSIX_C_SOURCE 200809L",
    "#include <stdio.h>",
    "#include <stdlib.h>",
    "#include <string.h>",
    '#include "protocol.h"',
    "static unsigned char buf[AGENTSH_MAX_MESSAGE_SIZE];",
    "static size_t put(size_t at, AGENTSH_STRING *s, const UINT16 *u, UINT32 n) {",
    "  if (n == 0) { s->Offset = 0; s->Length = 0; return at; }",
    "  s->Offset = (UINT32)at; s->Length = n; memcpy(buf + at, u, 2u * n);",
    "  buf[at + 2u * n] = 0; buf[at + 2u * n + 1] = 0; return at + 2u * n + 2u;",
    "}",
    'static void hex(size_t n) { for (size_t i = 0; i < n; i++) printf("%02x", buf[i]); printf("\\n"); }',
    "/* Prints a string as a JSON array of UTF-16 code units after the bounds and NUL checks. */",
    "static int str(const char *name, UINT32 size, AGENTSH_STRING s, size_t fixed) {",
    '  printf(",\\"%s\\":[", name);',
    '  if (s.Offset == 0 && s.Length == 0) { printf("]"); return 0; }',
    "  if (s.Offset % 2 || s.Offset < fixed || (unsigned long long)s.Offset + 2ull * s.Length + 2ull > size) return -1;",
    "  const unsigned char *p = buf + s.Offset;",
    "  if (p[2u * s.Length] || p[2u * s.Length + 1]) return -1;",
    '  for (UINT32 i = 0; i < s.Length; i++) { UINT16 u; memcpy(&u, p + 2u * i, 2); printf("%s%u", i ? "," : "", u); }',
    '  printf("]"); return 0;',
    "}",
    "static int decode(UINT32 len) {",
    "  AGENTSH_MESSAGE_HEADER h; memcpy(&h, buf, sizeof h);",
    "  if (len < sizeof h || h.Size != len) return -1;",
    '  printf("{\\"type\\":%u,\\"requestId\\":\\"%llu\\"", h.Type, (unsigned long long)h.RequestId);',
    "  switch (h.Type) {",
  ];
  for (const [t, layout] of Object.entries(LAYOUT_OF_TYPE)) {
    out.push(
      `  case ${t}: {`,
      `    if (len < sizeof(${layout.c})) return -1;`,
      `    const ${layout.c} *m = (const ${layout.c} *)buf;`,
      "    (void)m;",
    );
    for (const f of layout.fields) {
      if (f.kind === "header") continue;
      if (f.kind === "string") out.push(`    if (str("${f.ts}", len, m->${f.c}, sizeof *m)) return -1;`);
      else if (f.kind === "u64")
        out.push(`    printf(",\\"${f.ts}\\":\\"%llu\\"", (unsigned long long)m->${f.c});`);
      else if (f.kind === "i32") out.push(`    printf(",\\"${f.ts}\\":%d", (int)m->${f.c});`);
      else out.push(`    printf(",\\"${f.ts}\\":%u", (unsigned)m->${f.c});`);
    }
    const trailing = TRAILING_OF_TYPE[Number(t) as MsgType];
    if (trailing) {
      // Each item read by memcpy into its C type from where the fixed part ends.
      const item = trailing.item === "u32" ? "UINT32" : trailing.item.c;
      const print =
        trailing.item === "u32"
          ? '      printf("%s%u", i ? "," : "", (unsigned)e);'
          : [
              '      printf("%s{", i ? "," : "");',
              ...trailing.item.fields.map((f, j) =>
                f.kind === "u64"
                  ? `      printf("${j ? "," : ""}\\"${f.ts}\\":\\"%llu\\"", (unsigned long long)e.${f.c});`
                  : `      printf("${j ? "," : ""}\\"${f.ts}\\":%u", (unsigned)e.${f.c});`,
              ),
              '      printf("}");',
            ].join("\n");
      out.push(
        `    if (m->Count > ${trailing.cMax} || len != sizeof *m + sizeof(${item}) * m->Count) return -1;`,
        `    printf(",\\"${trailing.ts}\\":[");`,
        "    for (UINT32 i = 0; i < m->Count; i++) {",
        `      ${item} e; memcpy(&e, buf + sizeof *m + sizeof e * i, sizeof e);`,
        print,
        "    }",
        '    printf("]");',
      );
    }
    out.push("    break;", "  }");
  }
  out.push(
    "  default: return -1;",
    "  }",
    '  printf("}\\n");',
    "  return 0;",
    "}",
    "static void encode(void) {",
  );
  samples.forEach((msg) => {
    const layout = LAYOUT_OF_TYPE[msg.type];
    const values = msg as unknown as Record<string, unknown>;
    out.push("  {", `    ${layout.c} *m = (${layout.c} *)buf;`, "    memset(buf, 0, sizeof buf);");
    out.push(
      `    m->${cField(layout, "Type")} = ${msg.type}u;`,
      `    m->${cField(layout, "RequestId")} = ${cLiteral("u64", msg.requestId)};`,
    );
    let at = "sizeof *m";
    const trailing = TRAILING_OF_TYPE[msg.type];
    const items = trailing ? (values[trailing.ts] as unknown[]) : [];
    for (const f of layout.fields) {
      if (f.kind === "header" || f.kind === "string") continue;
      const v = trailing && f.c === "Count" ? items.length : values[f.ts];
      out.push(`    m->${f.c} = ${cLiteral(f.kind, v)};`);
    }
    out.push(`    size_t at = ${at};`);
    at = "at";
    for (const item of items) {
      const t = trailing!;
      if (t.item === "u32") out.push(`    { UINT32 e = ${item}u; memcpy(buf + at, &e, 4); at += 4; }`);
      else {
        const sets = t.item.fields.map(
          (f) => `e.${f.c} = ${cLiteral(f.kind, (item as Record<string, unknown>)[f.ts])};`,
        );
        out.push(
          `    { ${t.item.c} e; memset(&e, 0, sizeof e); ${sets.join(" ")} memcpy(buf + at, &e, sizeof e); at += ${itemSize(t)}; }`,
        );
      }
    }
    for (const f of layout.fields) {
      if (f.kind !== "string") continue;
      const s = values[f.ts] as string;
      out.push(
        `    { static const UINT16 u[] = ${unitsOf(s)}; ${at} = put(${at}, &m->${f.c}, u, ${s.length}u); }`,
      );
    }
    out.push(`    m->${cField(layout, "Size")} = (UINT32)at;`, "    hex(at);", "  }");
  });
  out.push(
    "}",
    "int main(int argc, char **argv) {",
    '  if (argc > 1 && strcmp(argv[1], "encode") == 0) { encode(); return 0; }',
    "  static char line[2 * AGENTSH_MAX_MESSAGE_SIZE + 4];",
    "  while (fgets(line, sizeof line, stdin)) {",
    '    size_t n = strcspn(line, "\\r\\n") / 2;',
    '    for (size_t i = 0; i < n; i++) { unsigned v; sscanf(line + 2 * i, "%2x", &v); buf[i] = (unsigned char)v; }',
    "    char *text = NULL; size_t textLen = 0; FILE *saved = stdout;",
    "    stdout = open_memstream(&text, &textLen);",
    "    int bad = decode((UINT32)n);",
    "    fclose(stdout); stdout = saved;",
    '    if (bad) printf("{\\"error\\":\\"invalid\\"}\\n"); else fputs(text, stdout);',
    "    free(text);",
    "  }",
    "  return 0;",
    "}",
  );
  return out.join("\n");
}

/** Compiles a generated program with gcc (sanitizers on) and returns the executable's path. */
export function compileC(source: string, name: string, cc = "gcc", extra: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), "agentsh-codec-"));
  const src = join(dir, `${name}.c`);
  writeFileSync(src, source);
  const exe = join(dir, name);
  execFileSync(cc, ["-std=c11", "-Wall", "-Wextra", "-Werror", "-I", DRIVER_INC, src, "-o", exe, ...extra], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  return exe;
}

/** Compiles a unit without linking (for cross compilers whose output cannot run here). */
export function compileOnly(source: string, name: string, cc: string): void {
  const dir = mkdtempSync(join(tmpdir(), "agentsh-codec-"));
  const src = join(dir, `${name}.c`);
  writeFileSync(src, source);
  execFileSync(
    cc,
    ["-std=c11", "-Wall", "-Wextra", "-Werror", "-I", DRIVER_INC, "-c", src, "-o", join(dir, `${name}.o`)],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
}
