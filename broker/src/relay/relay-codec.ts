// Binary serialisation of protobuf-es messages on the relay's hot path, compiled once per message
// type from the same generated descriptors that toBinary() reflects on at every call. Writes the bytes
// toBinary() writes (fields in number order, implicit-presence defaults skipped, map entries with
// key and value, unknown fields last) straight into one growing buffer: no per-field reflection, no
// TextEncoder allocation per string, no fork/join chunks. A message type using anything it does not
// cover (oneofs, explicit presence, packed or non-string lists, bytes, floats, ...) is left to
// toBinary(). relay-codec.test.ts holds it to byte equality with toBinary().

import { type DescField, type DescMessage, type MessageShape, ScalarType } from "@bufbuild/protobuf";

// google.protobuf.FeatureSet.FieldPresence.IMPLICIT
const IMPLICIT = 2;

interface Writer {
  buf: Buffer;
  pos: number;
}

type Encode = (w: Writer, msg: Record<string, unknown>) => void;

function ensure(w: Writer, n: number): void {
  if (w.pos + n <= w.buf.length) return;
  const next = Buffer.allocUnsafe(Math.max(w.buf.length * 2, w.pos + n));
  w.buf.copy(next, 0, 0, w.pos);
  w.buf = next;
}

function varint32(w: Writer, v: number): void {
  ensure(w, 5);
  const b = w.buf;
  let p = w.pos;
  while (v > 0x7f) {
    b[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  b[p++] = v;
  w.pos = p;
}

function varint64(w: Writer, v: bigint): void {
  if (v <= 0xffffffffn) {
    varint32(w, Number(v));
    return;
  }
  ensure(w, 10);
  while (v > 0x7fn) {
    w.buf[w.pos++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  w.buf[w.pos++] = Number(v);
}

function int32(w: Writer, v: number): void {
  if (v >= 0) varint32(w, v);
  else varint64(w, BigInt.asUintN(64, BigInt(v))); // sign-extended to ten bytes, as protobuf does
}

function string(w: Writer, s: string): void {
  const n = Buffer.byteLength(s, "utf8");
  varint32(w, n);
  ensure(w, n);
  w.pos += w.buf.write(s, w.pos, n, "utf8");
}

/** A length-delimited body: reserves one length byte and moves the body if the length needs more. */
function delimited(w: Writer, body: () => void): void {
  ensure(w, 1);
  const start = w.pos++;
  body();
  const len = w.pos - start - 1;
  if (len < 0x80) {
    w.buf[start] = len;
    return;
  }
  let extra = 0;
  for (let l = len >>> 7; l > 0; l >>>= 7) extra++;
  ensure(w, extra);
  w.buf.copy(w.buf, start + 1 + extra, start + 1, w.pos);
  const end = w.pos + extra;
  w.pos = start;
  varint32(w, len);
  w.pos = end;
}

const tagOf = (no: number, wireType: number) => (no << 3) | wireType;

const WIRE_TYPES: Partial<Record<ScalarType, number>> = {
  [ScalarType.STRING]: 2,
  [ScalarType.FIXED64]: 1,
  [ScalarType.SFIXED64]: 1,
  [ScalarType.FIXED32]: 5,
};

function scalarWriter(type: ScalarType): ((w: Writer, v: unknown) => void) | null {
  switch (type) {
    case ScalarType.STRING:
      return (w, v) => string(w, v as string);
    case ScalarType.BOOL:
      return (w, v) => varint32(w, v ? 1 : 0);
    case ScalarType.UINT32:
      return (w, v) => varint32(w, (v as number) >>> 0);
    case ScalarType.INT32:
      return (w, v) => int32(w, v as number);
    case ScalarType.UINT64:
      return (w, v) => varint64(w, BigInt.asUintN(64, BigInt(v as bigint)));
    case ScalarType.INT64:
      return (w, v) => varint64(w, BigInt.asUintN(64, BigInt(v as bigint)));
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return (w, v) => {
        ensure(w, 8);
        w.pos = w.buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v as bigint)), w.pos);
      };
    case ScalarType.FIXED32:
      return (w, v) => {
        ensure(w, 4);
        w.pos = w.buf.writeUInt32LE((v as number) >>> 0, w.pos);
      };
    default:
      return null;
  }
}

const isDefault = (v: unknown) => v === undefined || v === "" || v === 0 || v === false || v === 0n;

function fieldWriter(f: DescField, compile: (d: DescMessage) => Encode | null): Encode | null {
  if (f.oneof) return null;
  const key = f.localName;
  switch (f.fieldKind) {
    case "scalar":
    case "enum": {
      if (f.presence !== IMPLICIT) return null;
      const write = scalarWriter(f.fieldKind === "enum" ? ScalarType.INT32 : f.scalar);
      if (!write) return null;
      const wireType = f.fieldKind === "enum" ? 0 : (WIRE_TYPES[f.scalar] ?? 0);
      const tag = tagOf(f.number, wireType);
      return (w, m) => {
        const v = m[key];
        if (isDefault(v)) return;
        varint32(w, tag);
        write(w, v);
      };
    }
    case "message": {
      if (f.delimitedEncoding) return null;
      const enc = compile(f.message);
      if (!enc) return null;
      const tag = tagOf(f.number, 2);
      return (w, m) => {
        const v = m[key] as Record<string, unknown> | undefined;
        if (v === undefined) return;
        varint32(w, tag);
        delimited(w, () => enc(w, v));
      };
    }
    case "list": {
      const tag = tagOf(f.number, 2);
      if (f.listKind === "message") {
        if (f.delimitedEncoding) return null;
        const enc = compile(f.message);
        if (!enc) return null;
        return (w, m) => {
          for (const item of m[key] as Record<string, unknown>[]) {
            varint32(w, tag);
            delimited(w, () => enc(w, item));
          }
        };
      }
      if (f.listKind === "scalar" && f.scalar === ScalarType.STRING) {
        return (w, m) => {
          for (const item of m[key] as string[]) {
            varint32(w, tag);
            string(w, item);
          }
        };
      }
      return null;
    }
    case "map": {
      if (f.mapKey !== ScalarType.STRING || f.mapKind !== "scalar" || f.scalar !== ScalarType.STRING)
        return null;
      const tag = tagOf(f.number, 2);
      return (w, m) => {
        const map = m[key] as Record<string, string>;
        for (const k in map) {
          varint32(w, tag);
          delimited(w, () => {
            varint32(w, tagOf(1, 2));
            string(w, k);
            varint32(w, tagOf(2, 2));
            string(w, map[k]!);
          });
        }
      };
    }
  }
  return null;
}

const compiled = new Map<DescMessage, Encode | null>();

function compile(desc: DescMessage): Encode | null {
  if (compiled.has(desc)) return compiled.get(desc)!;
  compiled.set(desc, null); // recursive types stay with toBinary
  const writers: Encode[] = [];
  for (const f of [...desc.fields].sort((a, b) => a.number - b.number)) {
    const fw = fieldWriter(f, compile);
    if (!fw) return null;
    writers.push(fw);
  }
  const enc: Encode = (w, m) => {
    for (const write of writers) write(w, m);
    const unknown = m.$unknown as Array<{ no: number; wireType: number; data: Uint8Array }> | undefined;
    if (unknown)
      for (const u of unknown) {
        varint32(w, tagOf(u.no, u.wireType));
        ensure(w, u.data.length);
        w.buf.set(u.data, w.pos);
        w.pos += u.data.length;
      }
  };
  compiled.set(desc, enc);
  return enc;
}

const scratch: Writer = { buf: Buffer.allocUnsafe(16 * 1024), pos: 0 };

/**
 * A serialiser for messages of `desc` that writes what toBinary() writes, or null when the type uses
 * something this file does not cover. The returned Buffer is the caller's.
 */
export function compiledSerializer<D extends DescMessage>(
  desc: D,
): ((msg: MessageShape<D>) => Buffer) | null {
  const enc = compile(desc);
  if (!enc) return null;
  return (msg) => {
    scratch.pos = 0;
    enc(scratch, msg as unknown as Record<string, unknown>);
    const out = Buffer.allocUnsafe(scratch.pos);
    scratch.buf.copy(out, 0, 0, scratch.pos);
    return out;
  };
}
