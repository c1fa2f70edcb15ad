// Circuit breaker for the broker -> server hop. Closed: checks go to the server. After `threshold`
// consecutive failures it opens: checks are answered at once (stale or fail mode) instead of each
// waiting out its deadline, while a probe runs in the background every `probeIntervalMs`. The first
// successful probe (or check) closes it. It is never sticky.

export type BreakerState = "closed" | "open";

export interface BreakerStats {
  state: BreakerState;
  consecutiveFailures: number;
  opened: number;
  closed: number;
  probes: number;
}

export class Breaker {
  private stateNow: BreakerState = "closed";
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly counts = { opened: 0, closed: 0, probes: 0 };

  constructor(
    private readonly threshold: number,
    private readonly probeIntervalMs: number,
    private readonly probe: () => Promise<boolean>,
    private readonly onChange: (state: BreakerState) => void = () => {},
  ) {
    if (!Number.isInteger(threshold) || threshold < 1)
      throw new Error(`breaker threshold must be >= 1, got ${threshold}`);
  }

  get state(): BreakerState {
    return this.stateNow;
  }

  stats(): BreakerStats {
    return { state: this.stateNow, consecutiveFailures: this.failures, ...this.counts };
  }

  success(): void {
    this.failures = 0;
    if (this.stateNow === "open") this.transition("closed");
  }

  failure(): void {
    this.failures++;
    if (this.stateNow === "closed" && this.failures >= this.threshold) this.transition("open");
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private transition(to: BreakerState): void {
    this.stateNow = to;
    this.counts[to === "open" ? "opened" : "closed"]++;
    if (to === "open") this.schedule();
    else this.close();
    this.onChange(to);
  }

  private schedule(): void {
    this.timer = setTimeout(async () => {
      this.timer = null;
      if (this.stateNow !== "open") return;
      this.counts.probes++;
      let ok = false;
      try {
        ok = await this.probe();
      } catch {
        ok = false;
      }
      if (ok) this.success();
      else if (this.stateNow === "open") this.schedule();
    }, this.probeIntervalMs);
    this.timer.unref();
  }
}
