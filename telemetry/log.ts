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
import { type AnyValueMap, logs, SeverityNumber } from "@opentelemetry/api-logs";
import pino, { type DestinationStream, type Logger } from "pino";
import { activeTelemetry } from "./sdk.js";

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

export function traceFields(sc: SpanContext | undefined): Record<string, string> {
  // Only sampled traces are worth pointing at (an unsampled span's ids lead nowhere).
  if (!sc || !isSpanContextValid(sc) || !(sc.traceFlags & TraceFlags.SAMPLED)) return {};
  return {
    trace_id: sc.traceId,
    span_id: sc.spanId,
    trace_flags: `0${sc.traceFlags.toString(16)}`.slice(-2),
  };
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
  return pino(
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
