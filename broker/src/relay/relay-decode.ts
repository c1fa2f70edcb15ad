// Binary parsing of protobuf-es messages on the relay's hot path (the answers of the policy fleet),
// compiled once per message type from the generated descriptors that fromBinary() reflects on at
// every call. Builds the object fromBinary() builds: every field in declaration order with its zero
// value, message fields only when present, oneofs as { case, value }, unknown fields kept in
// $unknown. Covers the field kinds the relay's messages use (implicit-presence scalars and enums,
// messages, oneofs of those, repeated messages, string maps); a type using anything else is left to
// fromBinary(). Malformed input throws, as fromBinary() does. relay-decode.test.ts holds it to deep
// equality with fromBinary().

import { isUtf8 } from "node:buffer";
import { type DescField, type DescMessage, type MessageShape, ScalarType } from "@bufbuild/protobuf";

// google.protobuf.FeatureSet.FieldPresence.IMPLICIT
const IMPLICIT = 2;

class Reader {
  pos = 0;
  constructor(
    readonly buf: Buffer,
    public end: number,
  ) {}

  varint32(): number {
    const b = this.buf;
    let p = this.pos;
    let v = 0;
    let shift = 0;
    for (;;) {
      if (p >= this.end) throw new Error("premature end of varint");
      const c = b[p++]!;
      if (shift < 32) v |= (c & 0x7f) << shift;
      shift += 7;
      if (c < 0x80) break;
      if (shift > 63) throw new Error("varint longer than 10 bytes");
    }
    this.pos = p;
    return v >>> 0;
  }

  varint64(): bigint {
    const b = this.buf;
    let p = this.pos;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (;;) {
      if (p >= this.end) throw new Error("premature end of varint");
      const c = b[p++]!;
      if (shift < 28) lo |= (c & 0x7f) << shift;
      else if (shift === 28) {
        lo |= (c & 0x0f) << 28;
        hi |= (c & 0x7f) >>> 4;
      } else hi |= (c & 0x7f) << (shift - 32);
      shift += 7;
      if (c < 0x80) break;
      if (shift > 63) throw new Error("varint longer than 10 bytes");
    }
    this.pos = p;
    return hi === 0 ? BigInt(lo >>> 0) : (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
  }

  /** End of a length-delimited field whose length is next. */
  delimitedEnd(): number {
    const len = this.varint32();
    const end = this.pos + len;
    if (end > this.end) throw new Error("premature end of length-delimited field");
    return end;
  }

  /** A string as fromBinary() reads proto3 strings: strict UTF-8, a leading BOM dropped. */
  string(): string {
    const end = this.delimitedEnd();
    let s = this.buf.toString("utf8", this.pos, end);
    // toString() replaces invalid sequences with U+FFFD; only then is the (rare) strict check needed.
    if (s.includes("\ufffd") && !isUtf8(this.buf.subarray(this.pos, end)))
      throw new Error("invalid UTF-8 in a string field");
    if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
    this.pos = end;
    return s;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint64();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.pos = this.delimitedEnd();
        return;
      case 5:
        this.pos += 4;
        break;
      default:
        // Groups (3, 4) are not used by these messages: refused (fromBinary() would skip them).
        throw new Error(`cannot skip wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new Error("premature end of field");
  }
}

type Msg = Record<string, unknown>;
type Parse = (r: Reader, end: number) => Msg;
/** Reads one field's value (the tag is read) into m. */
type FieldRead = (r: Reader, m: Msg) => void;

function scalarReader(type: ScalarType): ((r: Reader) => unknown) | null {
  switch (type) {
    case ScalarType.STRING:
      return (r) => r.string();
    case ScalarType.BOOL:
      return (r) => r.varint64() !== 0n;
    case ScalarType.UINT32:
      return (r) => r.varint32();
    case ScalarType.INT32:
      return (r) => r.varint32() | 0;
    case ScalarType.UINT64:
      return (r) => r.varint64();
    case ScalarType.INT64:
      return (r) => BigInt.asIntN(64, r.varint64());
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64: {
      const signed = type === ScalarType.SFIXED64;
      return (r) => {
        if (r.pos + 8 > r.end) throw new Error("premature end of fixed64");
        const v = signed ? r.buf.readBigInt64LE(r.pos) : r.buf.readBigUInt64LE(r.pos);
        r.pos += 8;
        return v;
      };
    }
    case ScalarType.FIXED32:
      return (r) => {
        if (r.pos + 4 > r.end) throw new Error("premature end of fixed32");
        const v = r.buf.readUInt32LE(r.pos);
        r.pos += 4;
        return v;
      };
    default:
      return null;
  }
}

function fieldReader(f: DescField, compile: (d: DescMessage) => Parse | null): FieldRead | null {
  const key = f.localName;
  switch (f.fieldKind) {
    case "scalar":
    case "enum": {
      if (!f.oneof && f.presence !== IMPLICIT) return null;
      const s = scalarReader(f.fieldKind === "enum" ? ScalarType.INT32 : f.scalar);
      if (!s) return null;
      if (f.oneof) {
        const group = f.oneof.localName;
        return (r, m) => {
          m[group] = { case: key, value: s(r) };
        };
      }
      return (r, m) => {
        m[key] = s(r);
      };
    }
    case "message": {
      if (f.delimitedEncoding) return null;
      const parse = compile(f.message);
      if (!parse) return null;
      if (f.oneof) {
        const group = f.oneof.localName;
        return (r, m) => {
          const end = r.delimitedEnd();
          const prev = m[group] as { case: string | undefined; value?: Msg };
          // A message seen twice in a row is merged, as fromBinary() does; here: the later wins
          // field by field, which is what merging implicit-presence scalars means.
          m[group] = {
            case: key,
            value: parseInto(parse, r, end, prev.case === key ? prev.value : undefined),
          };
        };
      }
      return (r, m) => {
        const end = r.delimitedEnd();
        m[key] = parseInto(parse, r, end, m[key] as Msg | undefined);
      };
    }
    case "list": {
      if (f.listKind === "scalar" && f.scalar === ScalarType.STRING)
        return (r, m) => {
          (m[key] as string[]).push(r.string());
        };
      if (f.listKind !== "message" || f.delimitedEncoding) return null;
      const parse = compile(f.message);
      if (!parse) return null;
      return (r, m) => {
        const end = r.delimitedEnd();
        (m[key] as Msg[]).push(parse(r, end));
      };
    }
    case "map": {
      if (f.mapKey !== ScalarType.STRING || f.mapKind !== "scalar" || f.scalar !== ScalarType.STRING)
        return null;
      return (r, m) => {
        const end = r.delimitedEnd();
        let k = "";
        let v = "";
        while (r.pos < end) {
          const tag = r.varint32();
          if (tag === 0x0a) k = r.string();
          else if (tag === 0x12) v = r.string();
          else r.skip(tag & 7);
        }
        if (r.pos !== end) throw new Error("map entry overruns its length");
        (m[key] as Record<string, string>)[k] = v;
      };
    }
  }
  return null;
}

/** A message parsed over an earlier occurrence of the same field: its fields, then the new ones. */
function parseInto(parse: Parse, r: Reader, end: number, prev: Msg | undefined): Msg {
  const m = parse(r, end);
  if (prev === undefined) return m;
  // Rare (a field repeated on the wire): merge the simple way, as a second parse over the first.
  for (const k of Object.keys(m)) {
    const v = m[k];
    const z = prev[k];
    if (Array.isArray(v) && Array.isArray(z)) prev[k] = [...z, ...v];
    else if (k !== "$typeName" && !isZero(v)) prev[k] = v;
  }
  return prev;
}

const isZero = (v: unknown) =>
  v === undefined || v === "" || v === 0 || v === false || v === 0n || (Array.isArray(v) && v.length === 0);

const compiled = new Map<DescMessage, Parse | null>();

function compile(desc: DescMessage): Parse | null {
  if (compiled.has(desc)) return compiled.get(desc)!;
  compiled.set(desc, null); // recursive types stay with fromBinary
  const byNumber: (FieldRead | undefined)[] = [];
  // The zero message, built by a generated function whose object literal lists every field in
  // declaration order (one hidden class, allocated in one step; a spread of a template is several
  // times slower): scalars with their zero value, fresh lists, maps and oneofs; message fields absent.
  const entries: string[] = [`$typeName: z[0]`];
  const zeros: unknown[] = [desc.typeName];
  const seenOneofs = new Set<string>();
  for (const f of desc.fields) {
    const fr = fieldReader(f, compile);
    if (!fr) return null;
    byNumber[f.number] = fr;
    const name = JSON.stringify(f.oneof ? f.oneof.localName : f.localName);
    if (f.oneof) {
      if (!seenOneofs.has(f.oneof.localName)) entries.push(`${name}: { case: undefined }`);
      seenOneofs.add(f.oneof.localName);
    } else if (f.fieldKind === "list") entries.push(`${name}: []`);
    else if (f.fieldKind === "map") entries.push(`${name}: {}`);
    else if (f.fieldKind === "scalar" || f.fieldKind === "enum") {
      entries.push(`${name}: z[${zeros.length}]`);
      zeros.push(zeroOf(f));
    }
  }
  const make = new Function("z", `return () => ({ ${entries.join(", ")} });`)(zeros) as () => Msg;
  const parse: Parse = (r, end) => {
    const m = make();
    const outer = r.end;
    r.end = end;
    while (r.pos < end) {
      const start = r.pos;
      const tag = r.varint32();
      const no = tag >>> 3;
      const wire = tag & 7;
      const len = r.pos - start;
      if (no === 0 || wire > 5 || len > 5 || (len === 5 && r.buf[r.pos - 1]! > 0x0f))
        throw new Error(`illegal tag at offset ${start}: field number ${no}, wire type ${wire}`);
      const f = byNumber[no];
      // A known field is read as its type whatever the wire type says, as fromBinary() does.
      if (f !== undefined) f(r, m);
      else {
        const at = r.pos;
        r.skip(wire);
        let unknown = m.$unknown as Array<{ no: number; wireType: number; data: Uint8Array }> | undefined;
        if (unknown === undefined) m.$unknown = unknown = [];
        unknown.push({ no, wireType: wire, data: new Uint8Array(r.buf.subarray(at, r.pos)) });
      }
    }
    if (r.pos !== end) throw new Error("message overruns its length");
    r.end = outer;
    return m;
  };
  compiled.set(desc, parse);
  return parse;
}

function zeroOf(f: DescField & { fieldKind: "scalar" | "enum" }): unknown {
  if (f.fieldKind === "enum") return 0;
  switch (f.scalar) {
    case ScalarType.STRING:
      return "";
    case ScalarType.BOOL:
      return false;
    case ScalarType.UINT64:
    case ScalarType.INT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 0n;
    default:
      return 0;
  }
}

/**
 * A parser for messages of `desc` that returns what fromBinary() returns, or null when the type uses
 * something this file does not cover.
 */
export function compiledDeserializer<D extends DescMessage>(
  desc: D,
): ((b: Buffer) => MessageShape<D>) | null {
  const parse = compile(desc);
  if (!parse) return null;
  return (b) => parse(new Reader(b, b.length), b.length) as MessageShape<D>;
}
