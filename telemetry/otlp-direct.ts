// Spans and fixed-shape log records (log.ts recordWriter: the broker's audit records) exported over
// OTLP/HTTP with protobuf without holding them as objects for long: each is encoded into its OTLP
// bytes when it ends or is written (log.ts hands records over in one loop, within 100 ms of their
// writing), into a buffer outside the JavaScript heap. Every schedule delay (or at the batch size)
// the buffer is wrapped in its ResourceSpans/ResourceLogs and ScopeSpans/ScopeLogs and handed to the
// SDK's own OTLP/HTTP transport, configured by the same OTEL_EXPORTER_OTLP_* variables as its
// exporters (endpoint, headers, timeout, compression, certificates, retries). The bytes are the
// SDK's own: the same writer and field encoders in the same order (otlp-direct.test.ts compares them
// with ProtobufTraceSerializer and ProtobufLogsSerializer).
//
// Why: through the SDK's batch processors a span or a record was an object graph (the span or
// LogRecord, its attributes, its times) held for up to a second or more in a queue. The services'
// young generations are collected every few tens of milliseconds at saturation (the broker's is small
// by its memory flags, see build.mjs), so each of them was promoted to the old generation. With the
// audit records of a busy broker (hundreds a second) its old generation filled with them: after about
// 40 s mark-compacts ran every few seconds, each scavenge took twice as long, and a broker exporting
// logs made 5-8 % fewer decisions than one that did not (1-2 % in its first 20 s). Bytes outside the
// heap are not scanned, copied or promoted. (broker/bench/otel-bench.ts; test/bench/HISTORY.md.)
//
// Used when OTLP/HTTP protobuf (the default protocol) is the signal's only exporter
// (OTEL_TRACES_EXPORTER=otlp, OTEL_LOGS_EXPORTER=otlp); sdk.ts keeps the SDK's pipeline otherwise.
// Log lines written through pino's generic path always take the SDK's pipeline.
import type { Attributes, SpanContext } from "@opentelemetry/api";
import { type ExportResult, ExportResultCode, globalErrorHandler } from "@opentelemetry/core";
import type { IOtlpExportDelegate } from "@opentelemetry/otlp-exporter-base";
import {
  convertLegacyHttpOptions,
  createOtlpHttpExportDelegate,
} from "@opentelemetry/otlp-exporter-base/node-http";
import { ProtobufLogsSerializer, ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { hexToBinary } from "@opentelemetry/otlp-transformer/build/src/common/hex-to-binary.js";
import {
  writeAnyValue,
  writeHrTimeAsFixed64,
  writeInstrumentationScope,
  writeResource,
} from "@opentelemetry/otlp-transformer/build/src/common/protobuf/common-serializer.js";
import { ProtobufWriter } from "@opentelemetry/otlp-transformer/build/src/common/protobuf/protobuf-writer.js";
import { estimateVarintSize } from "@opentelemetry/otlp-transformer/build/src/common/protobuf/utils.js";
import type { Resource } from "@opentelemetry/resources";
import type { ReadableSpan, SpanProcessor } from "@opentelemetry/sdk-trace-base";

export interface BatchOptions {
  /** OTEL_BSP_SCHEDULE_DELAY / OTEL_BLRP_SCHEDULE_DELAY: the longest a span or record waits, ms. */
  scheduleDelayMillis?: number;
  /** OTEL_BSP_MAX_EXPORT_BATCH_SIZE / OTEL_BLRP_MAX_EXPORT_BATCH_SIZE. */
  maxExportBatchSize?: number;
  /** OTEL_BSP_MAX_QUEUE_SIZE / OTEL_BLRP_MAX_QUEUE_SIZE: a batch is never larger. */
  maxQueueSize?: number;
}

interface Scope {
  name: string;
  version?: string | undefined;
  schemaUrl?: string | undefined;
}

/** The spans or records of one instrumentation scope waiting to be exported (field 2 of its ScopeX). */
interface Batch {
  /** ScopeX.scope (field 1). */
  head: Uint8Array;
  /** ScopeX.schema_url (field 3), when the scope has one. */
  tail: Uint8Array;
  writer: Writer;
  count: number;
}

/** An export: the whole ExportTraceServiceRequest or ExportLogsServiceRequest. */
interface Request {
  bytes: Uint8Array;
  count: number;
}

/**
 * Strings at least this long are written by Buffer's native encoder; shorter ones by a loop (a native
 * call costs about as much as the loop over 50 ASCII characters; measured in a micro-benchmark).
 */
const LONG_STRING = 48;

/** What ProtobufWriter keeps private (its .d.ts), used by Writer. */
interface WriterInternals {
  _buffer: Uint8Array;
  _ensureCapacity(size: number): void;
}

/**
 * The SDK's ProtobufWriter with faster strings (span and record encoding was about half strings in a
 * profile). The bytes are the same: both write a lone surrogate as U+FFFD.
 * - Short strings: one pass that writes the characters while checking they are ASCII (the SDK's
 *   loop checks every character, then writes it, through property loads each time); a non-ASCII
 *   character starts the string again through Buffer's encoder.
 * - Long strings (paths, rule names): Buffer's native UTF-8 encoder.
 * - Attribute keys (a handful, written again and again): their KeyValue.key field encoded once
 *   (keyField) and copied.
 */
class Writer extends ProtobufWriter {
  private view: Buffer | undefined;
  private viewOf: Uint8Array | undefined;

  override writeString(str: string): void {
    const n = str.length;
    if (n < LONG_STRING) {
      const self = this as unknown as WriterInternals;
      self._ensureCapacity(n + 1);
      const buf = self._buffer;
      const p = this.pos + 1;
      if (copyAscii(buf, p, str)) {
        buf[p - 1] = n; // its length, one varint byte
        this.pos = p + n;
        return;
      }
    }
    this.writeNative(str);
  }

  /** `str` as a length and its UTF-8 bytes, by Buffer's encoder. */
  private writeNative(str: string): void {
    const n = Buffer.byteLength(str, "utf8");
    this.writeVarint(n);
    const self = this as unknown as WriterInternals;
    self._ensureCapacity(n);
    const buf = self._buffer;
    if (buf !== this.viewOf) {
      this.viewOf = buf;
      this.view = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
    }
    this.view!.write(str, this.pos, n, "utf8");
    this.pos += n;
  }

  /** Copies `bytes` (already encoded) as they are. */
  writeRaw(bytes: Uint8Array): void {
    const n = bytes.length;
    const self = this as unknown as WriterInternals;
    self._ensureCapacity(n);
    const buf = self._buffer;
    buf.set(bytes, this.pos);
    this.pos += n;
  }
}

/**
 * Writes `str` into `buf` from `p` if it is all ASCII (one byte a character); false at the first
 * character that is not (the bytes written so far are then to be overwritten).
 */
function copyAscii(buf: Uint8Array, p: number, str: string): boolean {
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i);
    if (c > 0x7f) return false;
    buf[p + i] = c;
  }
  return true;
}

/** Encoded KeyValue.key fields by key: attribute keys are few (the cache is bounded all the same). */
const keyFields = new Map<string, Uint8Array>();
const KEY_FIELDS_MAX = 1024;

/** KeyValue.key (field 1) holding `key`, encoded once. */
function keyField(key: string): Uint8Array {
  let f = keyFields.get(key);
  if (f === undefined) {
    const w = new Writer(key.length * 3 + 8);
    w.writeTag(1, 2);
    w.writeString(key);
    f = w.finish().slice();
    if (keyFields.size >= KEY_FIELDS_MAX) keyFields.clear();
    keyFields.set(key, f);
  }
  return f;
}

/**
 * One attribute as the repeated KeyValue field `field`: the SDK's writeKeyValue, with the key field
 * copied from keyField and, for a short ASCII string value, the lengths written before it (not
 * reserved, then patched, twice).
 */
function writeAttribute(w: Writer, field: number, key: string, value: unknown): void {
  const kf = keyField(key);
  if (typeof value === "string" && value.length < LONG_STRING) {
    // AnyValue { string_value (1) } in KeyValue { key (1), value (2) }: both lengths known up front.
    const n = value.length;
    const start = w.pos;
    w.writeTag(field, 2);
    w.writeVarint(kf.length + 4 + n);
    w.writeRaw(kf);
    const self = w as unknown as WriterInternals;
    self._ensureCapacity(4 + n);
    const buf = self._buffer;
    let p = w.pos;
    buf[p++] = (2 << 3) | 2;
    buf[p++] = 2 + n; // under 128: one varint byte
    buf[p++] = (1 << 3) | 2;
    buf[p++] = n;
    if (copyAscii(buf, p, value)) {
      w.pos = p + n;
      return;
    }
    w.pos = start; // not ASCII: again, the general way
  }
  const at = open(w, field);
  w.writeRaw(kf);
  const v = open(w, 2);
  writeAnyValue(w, value as Parameters<typeof writeAnyValue>[1]);
  close(w, v);
  close(w, at);
}

/** The SDK's writeAttributes (own enumerable keys in order), through writeAttribute. */
function writeAttrs(w: Writer, attributes: Attributes, field: number): void {
  for (const key in attributes) {
    if (!Object.hasOwn(attributes, key)) continue;
    writeAttribute(w, field, key, attributes[key]);
  }
}

/** Bytes a writer reserves for a nested message's length (finishLengthDelimited widens it if needed). */
const RESERVED = (() => {
  const w = new ProtobufWriter(16);
  const at = w.startLengthDelimited();
  return w.pos - at;
})();

/** Starts nested message `field` (length-delimited); returns what `close` needs. */
function open(w: ProtobufWriter, field: number): number {
  w.writeTag(field, 2);
  return w.startLengthDelimited();
}

/** Ends the nested message `open` started at `at`. */
function close(w: ProtobufWriter, at: number): void {
  w.finishLengthDelimited(at, w.pos - at - RESERVED);
}

/** A batch's first buffer (512 audit records take about 180 kB; it grows by doubling). */
const INITIAL_BYTES = 256 * 1024;

/** Writes `v` (under 2^32) as a varint at `p` of `out`; returns the position after it. */
function putVarint(out: Uint8Array, p: number, v: number): number {
  while (v > 0x7f) {
    out[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[p++] = v;
  return p;
}

/** A schema_url field (3), or nothing. */
function schemaUrlField(url: string | undefined): Uint8Array {
  const w = new Writer(64);
  if (url) {
    w.writeTag(3, 2);
    w.writeString(url);
  }
  return w.finish().slice();
}

const SIGNALS = {
  TRACES: {
    path: "v1/traces",
    item: "span",
    component: "otlp_http_span_exporter",
    serializer: ProtobufTraceSerializer,
  },
  LOGS: {
    path: "v1/logs",
    item: "log",
    component: "otlp_http_log_exporter",
    serializer: ProtobufLogsSerializer,
  },
} as const;

/** Batches of encoded spans or records, exported through the SDK's OTLP/HTTP transport. */
class OtlpBatcher {
  private readonly delegate: IOtlpExportDelegate<Request>;
  /** ResourceX.resource (field 1), and ResourceX.schema_url (field 3) when the resource has one. */
  private readonly resource: Uint8Array;
  private readonly resourceTail: Uint8Array;
  /** By scope object, as the SDK's serializers group them (a tracer's spans share its scope). */
  private readonly batches = new Map<Scope, Batch>();
  private readonly delay: number;
  private readonly batchSize: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  protected stopped = false;

  constructor(signal: keyof typeof SIGNALS, resource: Resource, opts: BatchOptions, defaultDelay: number) {
    const positive = (v: number | undefined, d: number) => (v !== undefined && v > 0 ? v : d);
    this.delay = positive(opts.scheduleDelayMillis, defaultDelay);
    // As the batch processors: a batch is never larger than the queue. A full batch is handed to the
    // transport at once, so spans and records wait here for at most one batch; the transport holds
    // at most OTEL_EXPORTER_OTLP_CONCURRENCY_LIMIT exports (30) and fails (and reports) any beyond.
    this.batchSize = Math.min(positive(opts.maxExportBatchSize, 512), positive(opts.maxQueueSize, 2048));
    const w = new Writer(1024);
    writeResource(w, resource, 1);
    this.resource = w.finish().slice();
    this.resourceTail = schemaUrlField(resource.schemaUrl);
    const s = SIGNALS[signal];
    this.delegate = createOtlpHttpExportDelegate(
      convertLegacyHttpOptions({}, signal, s.path, { "Content-Type": "application/x-protobuf" }),
      {
        serializeRequest: (r: Request) => r.bytes,
        deserializeResponse: (data: Uint8Array) => s.serializer.deserializeResponse(data),
      },
      s.component,
      { name: s.item, countItems: (r: Request) => r.count },
      undefined,
    );
  }

  /** The batch of a scope, to write one item into (then call `added`). */
  protected batchOf(scope: Scope): Batch {
    let b = this.batches.get(scope);
    if (!b) {
      const w = new Writer(256);
      writeInstrumentationScope(w, scope, 1);
      b = {
        head: w.finish().slice(),
        tail: schemaUrlField(scope.schemaUrl),
        writer: new Writer(INITIAL_BYTES),
        count: 0,
      };
      this.batches.set(scope, b);
    }
    return b;
  }

  /** One more item was written into `b`. */
  protected added(b: Batch): void {
    b.count++;
    if (b.count >= this.batchSize) this.send(b);
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.exportAll(), this.delay);
      this.timer.unref();
    }
  }

  /** How many items are encoded and waiting for their export (tests). */
  pending(): number {
    let n = 0;
    for (const b of this.batches.values()) n += b.count;
    return n;
  }

  /** Exports every waiting item now. */
  exportAll(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    for (const b of this.batches.values()) if (b.count > 0) this.send(b);
  }

  /** Wraps a batch's items in their ResourceX and ScopeX and exports them. */
  private send(b: Batch): void {
    const items = b.writer.finish();
    const scoped = b.head.length + items.length + b.tail.length;
    const resourced =
      this.resource.length + 1 + estimateVarintSize(scoped) + scoped + this.resourceTail.length;
    const bytes = new Uint8Array(1 + estimateVarintSize(resourced) + resourced);
    bytes[0] = (1 << 3) | 2; // ExportXServiceRequest.resource_x (field 1)
    let p = putVarint(bytes, 1, resourced);
    bytes.set(this.resource, p); // ResourceX.resource (field 1)
    p += this.resource.length;
    bytes[p++] = (2 << 3) | 2; // ResourceX.scope_x (field 2)
    p = putVarint(bytes, p, scoped);
    for (const part of [b.head, items, b.tail, this.resourceTail]) {
      bytes.set(part, p); // ScopeX.scope (1), its items (2), its schema_url (3); ResourceX.schema_url (3)
      p += part.length;
    }
    const request: Request = { bytes, count: b.count };
    // The items are copied: the batch's buffer is reused.
    b.writer.pos = 0;
    b.count = 0;
    const done = new Promise<void>((resolve) => {
      this.delegate.export(request, (result: ExportResult) => {
        if (result.code !== ExportResultCode.SUCCESS)
          globalErrorHandler(result.error ?? new Error(`OTLP export failed (${request.count} items)`));
        resolve();
      });
    });
    this.inFlight.add(done);
    void done.then(() => this.inFlight.delete(done));
  }

  /** Exports what is waiting and waits for every export under way. */
  async flush(): Promise<void> {
    this.exportAll();
    await Promise.all([...this.inFlight]);
  }

  /** Flushes, then stops: later items are dropped. */
  async shutdown(): Promise<void> {
    if (this.stopped) return;
    await this.flush();
    this.stopped = true;
    await this.delegate.shutdown();
  }
}

/** A field value of a fixed-shape record (log.ts). */
type FieldValue = string | number | boolean | undefined;

export interface RecordSinkOptions extends BatchOptions {
  /** OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT (default 128). */
  attributeCountLimit?: number;
  /** OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT (default none). */
  attributeValueLengthLimit?: number;
}

/** Writes one record of a writer's shape: `values[i]` under the writer's `keys[i]`. */
export type RecordEncoder = (
  time: number,
  values: readonly FieldValue[],
  span: SpanContext | undefined,
) => void;

const SEVERITY_INFO = 9;
const hr: [number, number] = [0, 0];

/** Writes a millisecond epoch time as the fixed64 nanoseconds of field `field`. */
function writeTime(w: ProtobufWriter, field: number, ms: number): void {
  const sec = Math.floor(ms / 1000);
  hr[0] = sec;
  hr[1] = Math.round((ms - sec * 1000) * 1e6);
  w.writeTag(field, 1);
  writeHrTimeAsFixed64(w, hr);
}

/** Fixed-shape log records to OTLP: each as the LogRecord the SDK would make of it, at level info. */
export class OtlpRecordSink extends OtlpBatcher {
  private readonly countLimit: number;
  private readonly lengthLimit: number;

  constructor(resource: Resource, opts: RecordSinkOptions = {}) {
    super("LOGS", resource, opts, 1000);
    this.countLimit = opts.attributeCountLimit ?? 128;
    const l = opts.attributeValueLengthLimit;
    this.lengthLimit = l !== undefined && l > 0 ? l : Number.POSITIVE_INFINITY;
  }

  /** An encoder of records with body `body` and attribute keys `keys`, in scope `scope`. */
  encoder(scope: string, body: string, keys: readonly string[]): RecordEncoder {
    // As the SDK: an empty key is not an attribute.
    const valid = keys.map((k) => k.length > 0);
    const sc: Scope = { name: scope };
    return (time, values, span) => {
      if (this.stopped) return;
      const b = this.batchOf(sc);
      const w = b.writer;
      // ScopeLogs.log_records (field 2): the SDK's serializeLogRecord, field for field.
      const record = open(w, 2);
      writeTime(w, 1, time);
      w.writeTag(2, 0);
      w.writeVarint(SEVERITY_INFO);
      w.writeTag(3, 2);
      w.writeString("INFO");
      const bodyAt = open(w, 5);
      writeAnyValue(w, body);
      close(w, bodyAt);
      let kept = 0;
      let dropped = 0;
      for (let i = 0; i < keys.length; i++) {
        let v = values[i];
        if (v === undefined || !valid[i]) continue;
        if (kept >= this.countLimit) {
          dropped++;
          continue;
        }
        kept++;
        if (typeof v === "string" && v.length > this.lengthLimit) v = v.substring(0, this.lengthLimit);
        writeAttribute(w, 6, keys[i]!, v);
      }
      w.writeTag(7, 0);
      w.writeVarint(dropped);
      if (span) {
        if (span.traceFlags) {
          w.writeTag(8, 5);
          w.writeFixed32(span.traceFlags);
        }
        if (span.traceId) {
          w.writeTag(9, 2);
          w.writeBytes(hexToBinary(span.traceId));
        }
        if (span.spanId) {
          w.writeTag(10, 2);
          w.writeBytes(hexToBinary(span.spanId));
        }
      }
      writeTime(w, 11, time);
      close(w, record);
      this.added(b);
    };
  }
}

// Span flags (OTLP): the context's trace flags, and whether the parent is remote.
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;
const spanFlags = (traceFlags: number, remote: boolean | undefined) =>
  (traceFlags & 0xff) | HAS_IS_REMOTE | (remote ? IS_REMOTE : 0);

/** trace_id (field 1), span_id (2) and trace_state (3, when there is one): of a Span, and of a Link. */
function writeContext(w: ProtobufWriter, c: SpanContext): void {
  w.writeTag(1, 2);
  w.writeBytes(hexToBinary(c.traceId));
  w.writeTag(2, 2);
  w.writeBytes(hexToBinary(c.spanId));
  const state = c.traceState?.serialize();
  if (state) {
    w.writeTag(3, 2);
    w.writeString(state);
  }
}

/** A span processor that encodes each span as it ends and exports the bytes (see above). */
export class OtlpSpanExporter extends OtlpBatcher implements SpanProcessor {
  constructor(resource: Resource, opts: BatchOptions = {}) {
    super("TRACES", resource, opts, 5000);
  }

  onStart(): void {}

  /** ScopeSpans.spans (field 2): the SDK's serializeSpan, field for field. */
  onEnd(span: ReadableSpan): void {
    if (this.stopped) return;
    const b = this.batchOf(span.instrumentationScope);
    const w = b.writer;
    const at = open(w, 2);
    const ctx = span.spanContext();
    writeContext(w, ctx);
    const parent = span.parentSpanContext;
    if (parent?.spanId) {
      w.writeTag(4, 2);
      w.writeBytes(hexToBinary(parent.spanId));
    }
    w.writeTag(5, 2);
    w.writeString(span.name);
    const kind = span.kind == null ? 0 : span.kind + 1;
    if (kind !== 0) {
      w.writeTag(6, 0);
      w.writeVarint(kind);
    }
    w.writeTag(7, 1);
    writeHrTimeAsFixed64(w, span.startTime);
    w.writeTag(8, 1);
    writeHrTimeAsFixed64(w, span.endTime);
    if (span.attributes) writeAttrs(w, span.attributes, 9);
    w.writeTag(10, 0);
    w.writeVarint(span.droppedAttributesCount);
    for (const event of span.events) {
      const ev = open(w, 11);
      w.writeTag(1, 1);
      writeHrTimeAsFixed64(w, event.time);
      w.writeTag(2, 2);
      w.writeString(event.name);
      if (event.attributes) writeAttrs(w, event.attributes, 3);
      w.writeTag(4, 0);
      w.writeVarint(event.droppedAttributesCount || 0);
      close(w, ev);
    }
    w.writeTag(12, 0);
    w.writeVarint(span.droppedEventsCount);
    for (const link of span.links) {
      const ln = open(w, 13);
      const lc = link.context;
      writeContext(w, lc);
      if (link.attributes) writeAttrs(w, link.attributes, 4);
      w.writeTag(5, 0);
      w.writeVarint(link.droppedAttributesCount || 0);
      w.writeTag(6, 5);
      w.writeFixed32(spanFlags(lc.traceFlags, lc.isRemote));
      close(w, ln);
    }
    w.writeTag(14, 0);
    w.writeVarint(span.droppedLinksCount);
    const status = open(w, 15);
    if (span.status.message) {
      w.writeTag(2, 2);
      w.writeString(span.status.message);
    }
    w.writeTag(3, 0);
    w.writeVarint(span.status.code);
    close(w, status);
    w.writeTag(16, 5);
    w.writeFixed32(spanFlags(ctx.traceFlags, parent?.isRemote));
    close(w, at);
    this.added(b);
  }

  forceFlush(): Promise<void> {
    return this.flush();
  }
}
