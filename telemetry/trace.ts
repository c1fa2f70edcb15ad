// Root spans that cost nothing when they are not sampled.
//
// With the default sampler (parentbased_traceidratio, 1%) the SDK's startSpan still generates two ids,
// copies the attributes, runs the sampler and wraps a non-recording span for the 99% of decisions that
// are not traced. `rootSpanContext()` makes the root's sampling decision first, with the configured
// ratio: undefined means "not sampled: start no span"; otherwise start the root span in the returned
// context, whose marker tells the SDK sampler (built in sdk.ts) that the decision is already made, so
// a root is sampled once at the configured rate. Children follow their parent as before.
//
// Shared by the broker and the policy server (package @agentsh/telemetry).
import {
  type Context,
  createContextKey,
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  type Span,
  trace,
} from "@opentelemetry/api";
import {
  ParentBasedSampler,
  type Sampler,
  SamplingDecision,
  type SamplingResult,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";

/** Marks a context whose root span rootSpanContext already sampled (light-trace.ts reads it too). */
export const PRESAMPLED = createContextKey("agentsh root span already sampled");
const PRESAMPLED_CONTEXT = ROOT_CONTEXT.setValue(PRESAMPLED, true);

/** A span that records nothing (what the API returns without an SDK), shared. */
export const NOT_SAMPLED: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * Whether `span` records. NOT_SAMPLED, the span of nearly every decision, is answered by a compare,
 * so that the decision path calls span methods only on the spans of traced decisions (a call site
 * that sees both kinds of span is polymorphic).
 */
export function recording(span: Span | undefined): span is Span {
  return span !== undefined && span !== NOT_SAMPLED && span.isRecording();
}

// The probability that a new root span is sampled: 0 without tracing, undefined when the configured
// sampler is not a ratio one (then the SDK decides every time).
let rootRatio: number | undefined = 0;

/**
 * At most `perSecond` new traces a second, in bursts of up to `perSecond` (a token bucket): the
 * default sampler's cap (sdk.ts), so that a busy host's trace volume, and what tracing costs it, stop
 * growing with its load.
 */
export class TraceBudget {
  private tokens: number;
  constructor(
    readonly perSecond: number,
    private last = performance.now(),
  ) {
    this.tokens = perSecond;
  }
  /** Whether one more trace may start at `now` (ms; if so, it is counted). */
  take(now = performance.now()): boolean {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      // A clock that goes back earns nothing, then or later (last stays the latest time seen).
      this.tokens = Math.min(this.perSecond, this.tokens + (elapsed * this.perSecond) / 1000);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
let budget: TraceBudget | undefined;

/** Whether the cap (if there is one) lets one more new trace start now; if so, it is counted. */
function underCap(): boolean {
  return budget === undefined || budget.take();
}

/** Whether a new root span (no valid parent) is sampled: the ratio, then the cap if there is one. */
export function sampleNewRoot(ratio: number): boolean {
  return ratio > 0 && Math.random() < ratio && underCap();
}

/**
 * How many roots a Bernoulli(`ratio`) draw per root makes until it samples one, this one included
 * (geometric, at least 1; Infinity for 0): the same distribution as a draw per root, made once per
 * sampled root.
 */
export function rootsUntilSampled(ratio: number, u = Math.random()): number {
  if (!(ratio > 0)) return Number.POSITIVE_INFINITY;
  if (ratio >= 1) return 1;
  return 1 + Math.floor(Math.log1p(-u) / Math.log1p(-ratio));
}

// rootSpanContext's countdown to its next sampled root. The decision path asks for every decision,
// and 99 in 100 are not traced: a decrement and a compare answer them, where a draw per root drew a
// random number and ran the sampler's checks (side by side, 0.6 % more decisions, within the noise:
// test/bench/HISTORY.md, session 41).
let rootsLeft = Number.POSITIVE_INFINITY;

/** The context to start a root span in, or undefined when this root is not sampled (start none). */
export function rootSpanContext(): Context | undefined {
  return --rootsLeft > 0 ? undefined : nextRoot();
}

/** Starts the countdown to the next sampled root (every root when the SDK decides). */
function rewind(): void {
  rootsLeft = rootRatio === undefined ? 1 : rootsUntilSampled(rootRatio);
}

/** The root the countdown reached: sampled at the ratio, then held to the cap; or the SDK decides. */
function nextRoot(): Context | undefined {
  rewind();
  if (rootRatio === undefined) return ROOT_CONTEXT;
  return underCap() ? PRESAMPLED_CONTEXT : undefined;
}

/**
 * sdk.ts: tracing on with `ratio` as configured, or off (`ratio` 0); new traces capped at `perSecond`
 * a second (undefined: no cap).
 */
export function setRootSampling(ratio: number | undefined, perSecond?: number): void {
  rootRatio = ratio;
  budget = perSecond === undefined ? undefined : new TraceBudget(perSecond);
  rewind();
}

/** The root ratio as rootSpanContext uses it (tests). */
export function rootSampling(): number | undefined {
  return rootRatio;
}

/** The cap on new traces a second, undefined for none (tests). */
export function rootTraceBudget(): number | undefined {
  return budget?.perSecond;
}

/** A ratio sampler that honours a decision rootSpanContext already made. */
class PresampledRatioSampler implements Sampler {
  private readonly ratio: TraceIdRatioBasedSampler;
  constructor(r: number) {
    this.ratio = new TraceIdRatioBasedSampler(r);
  }
  shouldSample(ctx: Context, traceId: string): SamplingResult {
    if (ctx.getValue(PRESAMPLED) === true) return { decision: SamplingDecision.RECORD_AND_SAMPLED };
    const r = this.ratio.shouldSample(ctx, traceId);
    if (r.decision === SamplingDecision.RECORD_AND_SAMPLED && !underCap())
      return { decision: SamplingDecision.NOT_RECORD };
    return r;
  }
  toString(): string {
    return `Presampled{${this.ratio.toString()}}`;
  }
}

/**
 * For OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (as the SDK reads them): the sampler to give the
 * SDK (undefined: let it build its own), the root ratio for rootSpanContext, and whether a child
 * simply follows its parent's sampled flag (then light-trace.ts may make the spans).
 */
export function samplerFor(
  name: string | undefined,
  arg: string | undefined,
): { sampler: Sampler | undefined; ratio: number | undefined; parentBased: boolean } {
  switch (name?.trim()) {
    case "always_off":
      return { sampler: undefined, ratio: 0, parentBased: false };
    case "parentbased_always_off":
      return { sampler: undefined, ratio: 0, parentBased: true };
    case "parentbased_always_on":
      return {
        sampler: new ParentBasedSampler({ root: new PresampledRatioSampler(1) }),
        ratio: 1,
        parentBased: true,
      };
    case "parentbased_traceidratio": {
      // The SDK's rule: a missing or out-of-range argument means 1.
      const n = arg === undefined || arg.trim() === "" ? Number.NaN : Number(arg);
      const r = Number.isFinite(n) && n >= 0 && n <= 1 ? n : 1;
      return {
        sampler: new ParentBasedSampler({ root: new PresampledRatioSampler(r) }),
        ratio: r,
        parentBased: true,
      };
    }
    default:
      return { sampler: undefined, ratio: undefined, parentBased: false };
  }
}
