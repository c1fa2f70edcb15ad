// Structured JSON logs (pino) with trace_id/span_id. When the SDK exports logs
// (OTEL_LOGS_EXPORTER=otlp | console), every line is also emitted as an OpenTelemetry log record.
//
// Shared by the broker and the policy server (package @agentsh/telemetry).
import {
  context,
  isSpanContextValid,
  ROOT_CONTEXT,
  type SpanContext,
  TraceFlags,
  trace,
} from "@opentelemetry/api";
import { type AnyValueMap, logs, type Logger as OtelLogger, SeverityNumber } from "@opentelemetry/api-logs";
import pino, { type DestinationStream, type Logger } from "pino";
import type { RecordEncoder } from "./otlp-direct.js";
import { activeTelemetry, onBeforeFlush, recordSink } from "./sdk.js";

export interface LoggerOptions {
  /** `service` field of every line. */
  service: string;
  /** A file path, a file descriptor (default 2, stderr) or a stream. */
  destination?: string | number | DestinationStream;
  /** Default AGENTSH_LOG_LEVEL, else info. */
  level?: string;
  /** Also emit OpenTelemetry log records (default: when the started SDK exports logs). */
  otel?: boolean;
}

/** Only sampled traces are worth pointing at (an unsampled span's ids lead nowhere). */
function sampled(sc: SpanContext | undefined): sc is SpanContext {
  return sc !== undefined && (sc.traceFlags & TraceFlags.SAMPLED) !== 0 && isSpanContextValid(sc);
}

const flagsHex = (sc: SpanContext) => `0${sc.traceFlags.toString(16)}`.slice(-2);

export function traceFields(sc: SpanContext | undefined): Record<string, string> {
  if (!sampled(sc)) return {};
  return { trace_id: sc.traceId, span_id: sc.spanId, trace_flags: flagsHex(sc) };
}

/** The fields of a fixed-shape record: `values[i]` under `keys[i]`, undefined ones left out. */
function fieldsOf(
  keys: readonly string[],
  values: readonly FieldValue[],
): Record<string, string | number | boolean> {
  const fields: Record<string, string | number | boolean> = {};
  for (let i = 0; i < keys.length; i++) {
    const v = values[i];
    if (v !== undefined) fields[keys[i]!] = v;
  }
  return fields;
}

export type { Logger };

export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.level ?? process.env.AGENTSH_LOG_LEVEL ?? "info";
  const dest = opts.destination ?? 2;
  const out: DestinationStream =
    typeof dest === "object"
      ? dest
      : pino.destination({ dest, sync: false, mkdir: typeof dest === "string" });
  const otel = opts.otel ?? (activeTelemetry()?.logsExporters.length ?? 0) > 0;
  const mixin = () => traceFields(trace.getSpan(context.active())?.spanContext());
  const logger = pino(
    {
      level,
      base: { service: opts.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      // The active span of synchronous code run under context.with (no async context manager).
      mixin,
      // Each call is also an OpenTelemetry log record, built from the call's own fields.
      ...(otel
        ? {
            hooks: {
              logMethod(args: unknown[], method: (...a: unknown[]) => void, levelNo: number) {
                emitOtel(opts.service, levelNo, args, mixin());
                method.apply(this, args);
              },
            },
          }
        : {}),
    },
    out,
  );
  loggers.set(logger, { service: opts.service, out, otel });
  return logger;
}

const loggers = new WeakMap<Logger, { service: string; out: DestinationStream; otel: boolean }>();

/** A field value of a fixed-shape record; undefined fields are left out (as pino does). */
export type FieldValue = string | number | boolean | undefined;

/** Writes one record: `values[i]` is the value of `keys[i]`; `span` its trace (when sampled). */
export type RecordWriter = (values: readonly FieldValue[], span?: SpanContext) => void;

/** A JSON string literal of `s` (JSON.stringify's escaping: quotes, backslashes, controls, lone surrogates). */
const jsonString = (s: string): string => JSON.stringify(s);

function jsonValue(v: string | number | boolean): string {
  if (typeof v === "string") return jsonString(v);
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "null";
  return v ? "true" : "false";
}

let isoSecond = Number.NaN;
let isoPrefix = "";
const MS3 = Array.from({ length: 1000 }, (_, i) => `${String(i).padStart(3, "0")}Z`);
/** pino.stdTimeFunctions.isoTime's text (Date#toISOString), formatted once per second. */
export function isoTime(ms: number): string {
  const sec = Math.floor(ms / 1000);
  if (sec !== isoSecond) {
    isoSecond = sec;
    const iso = new Date(sec * 1000).toISOString(); // ...THH:MM:SS.000Z
    isoPrefix = iso.slice(0, iso.length - 4);
  }
  return isoPrefix + MS3[ms - sec * 1000]!;
}

// The OpenTelemetry log records of fixed-shape writers are made in batches: a record is kept as its
// time, a copy of its values and its span, and every BATCH_MS (or at BATCH_MAX records, or before
// the SDK flushes or shuts down) the held records are made in one loop: encoded into OTLP bytes
// when the SDK exports logs with OTLP/HTTP protobuf alone (the usual case, otlp-direct.ts), else
// emitted to the SDK. Made one by one, as the rare event an audit record is (a few percent of
// decisions), each ran its code cold on the broker's main thread, which sets end-to-end throughput
// (see broker/bench/otel-bench.ts): through the SDK at tens of microseconds; encoded directly,
// 15-18 µs a record in a busy broker, against about 6 µs in batches of 100 ms (side by side, 0.5 %
// more decisions, within the noise: test/bench/HISTORY.md). The records keep their own timestamps
// and are exported as before (OTEL_BLRP_SCHEDULE_DELAY, 1 s by default), so at most BATCH_MS is
// added before a record reaches the exporter. Held that long, many outlive a scavenge or two and
// are promoted (a saturated instrumented broker's heap grows about 0.65 MB a second against 0.3
// without telemetry), but slowly enough that its first mark-compact comes after about half a
// minute, and its scavenges take no longer (otlp-direct.ts says what records held for seconds did).
// BATCH_MAX keeps batches short when records are frequent (every decision audited: about 9000 a
// second): batches of 512, which took tens of milliseconds to fill, made 4.7 % fewer decisions than
// batches of 32 side by side (every round; held that long, many records outlive a scavenge), and at
// that rate batches of 32 did as well as encoding each record as it is written (0.6 % more
// decisions, within the noise). At the usual rate (a few hundred records a second, 32 in about
// 70 ms) the batches do better, side by side over twenty-four rounds: encoding each record as it is
// written made 0.85 % fewer decisions (±0.5), batches of at most 25 ms 0.7 % fewer (±0.3), and
// batches of up to 128 within 300 ms did no better (0.25 % more, ±0.5). Neither how they are held
// nor where they are encoded helps: kept as the bytes of their JSON lines outside the heap and
// parsed back at the batch, they cost the same (0.07 %, ±0.6); those bytes handed to a worker
// thread for work like encoding cost 0.8 % more (±0.6), the main thread no less
// (test/bench/HISTORY.md).
const BATCH_MS = 100;
/** The most records held at once (above). */
export const BATCH_MAX = 32;

interface HeldRecord {
  time: number;
  values: FieldValue[];
  span: SpanContext | undefined;
}

/** Writers with records held, and the timer that emits them. */
const holding = new Set<() => void>();
let batchTimer: NodeJS.Timeout | undefined;

function emitHeld(): void {
  if (batchTimer) clearTimeout(batchTimer);
  batchTimer = undefined;
  for (const emit of holding) emit();
  holding.clear();
}
onBeforeFlush(emitHeld);

/**
 * A writer of one fixed record shape at level info on `logger` (made by createLogger): the same JSON
 * line pino would write for `logger.info({ [keys[i]]: values[i], ...traceFields(span) }, msg)` and, when
 * the logger exports OpenTelemetry logs, the same log record (emitted in a batch, see above), without
 * pino's generic object walk, its hooks or its mixin: the line is built from the precomputed keys and
 * written to the logger's destination, which batches writes (pino.destination, sync: false).
 */
export function recordWriter(logger: Logger, msg: string, keys: readonly string[]): RecordWriter {
  const meta = loggers.get(logger);
  if (!meta) {
    // Not one of ours: the generic path.
    return (values, span) => logger.info({ ...fieldsOf(keys, values), ...traceFields(span) }, msg);
  }
  const head = `{"level":30,"time":"`;
  const afterTime = `","service":${jsonString(meta.service)},`;
  const tail = `"msg":${jsonString(msg)}}\n`;
  const prefixes = keys.map((k) => `${jsonString(k)}:`);
  const out = meta.out;
  let otelLogger: OtelLogger | undefined;
  let otelOf: unknown;
  let encoder: RecordEncoder | undefined;
  let encoderOf: unknown;
  let held: HeldRecord[] = [];
  const emit = (): void => {
    const records = held;
    held = [];
    // Straight to OTLP bytes when the SDK exports logs with OTLP/HTTP protobuf (otlp-direct.ts).
    const sink = recordSink();
    if (sink) {
      if (sink !== encoderOf) {
        encoderOf = sink;
        encoder = sink.encoder(meta.service, msg, keys);
      }
      for (const r of records) encoder!(r.time, r.values, r.span);
      return;
    }
    const provider = logs.getLoggerProvider();
    if (provider !== otelOf) {
      otelOf = provider;
      otelLogger = provider.getLogger(meta.service);
    }
    for (const r of records) {
      otelLogger!.emit({
        timestamp: r.time,
        observedTimestamp: r.time,
        severityNumber: SeverityNumber.INFO,
        severityText: "INFO",
        body: msg,
        attributes: fieldsOf(keys, r.values) as AnyValueMap,
        ...(r.span ? { context: trace.setSpanContext(ROOT_CONTEXT, r.span) } : {}),
      });
    }
  };
  return (values, span) => {
    if (logger.levelVal > 30) return;
    const now = Date.now();
    let line = head + isoTime(now) + afterTime;
    for (let i = 0; i < prefixes.length; i++) {
      const v = values[i];
      if (v !== undefined) line += `${prefixes[i]}${jsonValue(v)},`;
    }
    const traced = sampled(span);
    if (traced)
      line += `"trace_id":"${span.traceId}","span_id":"${span.spanId}","trace_flags":"${flagsHex(span)}",`;
    out.write(line + tail);
    if (!meta.otel) return;
    if (held.length === 0) holding.add(emit);
    held.push({ time: now, values: values.slice(), span: traced ? span : undefined });
    if (held.length >= BATCH_MAX) emitHeld();
    else if (!batchTimer) {
      batchTimer = setTimeout(emitHeld, BATCH_MS);
      batchTimer.unref();
    }
  };
}

const SEVERITY: Record<number, [SeverityNumber, string]> = {
  10: [SeverityNumber.TRACE, "TRACE"],
  20: [SeverityNumber.DEBUG, "DEBUG"],
  30: [SeverityNumber.INFO, "INFO"],
  40: [SeverityNumber.WARN, "WARN"],
  50: [SeverityNumber.ERROR, "ERROR"],
  60: [SeverityNumber.FATAL, "FATAL"],
};

/** Emits one pino call (`(fields, msg)` or `(msg)`) as an OpenTelemetry log record. */
function emitOtel(service: string, levelNo: number, args: unknown[], active: Record<string, string>): void {
  const first = args[0];
  const fields = first !== null && typeof first === "object" ? (first as Record<string, unknown>) : {};
  const msg = typeof first === "string" ? first : typeof args[1] === "string" ? args[1] : "";
  const attributes: AnyValueMap = {};
  let traceId = active.trace_id;
  let spanId = active.span_id;
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    if (k === "trace_id") traceId = String(v);
    else if (k === "span_id") spanId = String(v);
    else if (k !== "trace_flags")
      attributes[k] = v !== null && typeof v === "object" ? JSON.stringify(v) : (v as string | number);
  }
  const [severityNumber, severityText] = SEVERITY[levelNo] ?? [SeverityNumber.INFO, "INFO"];
  logs.getLogger(service).emit({
    severityNumber,
    severityText,
    body: msg,
    attributes,
    ...(traceId && spanId
      ? { context: trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: 1 }) }
      : {}),
  });
}
