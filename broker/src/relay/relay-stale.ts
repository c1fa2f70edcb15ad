// stale-if-error: the last answer the server gave for a key, reusable for `windowMs` when the server
// cannot answer, before the fail mode applies. Bounded (LRU by insertion refresh); cleared when the
// policy version changes, since an answer of an older policy must not outlive it.
import type { CheckResponse } from "@agentsh/proto";

export class StaleStore {
  private readonly map = new Map<string, { at: number; response: CheckResponse }>();

  constructor(
    private readonly windowMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  get enabled(): boolean {
    return this.windowMs > 0;
  }

  get size(): number {
    return this.map.size;
  }

  put(key: string, response: CheckResponse, now = Date.now()): void {
    if (!this.enabled) return;
    this.map.delete(key);
    this.map.set(key, { at: now, response });
    if (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value as string);
  }

  get(key: string, now = Date.now()): CheckResponse | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    if (now - e.at > this.windowMs) {
      this.map.delete(key);
      return undefined;
    }
    return e.response;
  }

  clear(): void {
    this.map.clear();
  }
}
