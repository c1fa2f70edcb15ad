// The checks of one CheckStream waiting for their answers, by request id, without a Map.
//
// Why not a Map: a Map that gains and loses an entry per check replaces its hash table every few
// hundred checks. V8 (Node 20; objects/ordered-hash-table.cc, Rehash) allocates the new table in the
// generation of the one it replaces, and the replaced table keeps its entries, and a link to the new
// table, until it is collected. Once a full garbage collection has moved the table in use to the
// old generation, every later table is allocated there and the checks the replaced ones held
// outlive every young collection: a busy broker then promoted about 12 MB/s and collected fully
// every 1-3 s, for good, from its first full collection on (test/bench/HISTORY.md, session 39;
// relay-pending.test.ts reproduces it with a Map alone). Here a check's entry sits in a fixed array
// slot (its id modulo the ring's size) that is cleared when it is answered; only an id whose slot is
// taken (more than RING_SIZE in flight) waits in a Map.

/** Slots in the ring: more checks in flight than this on one stream share the overflow map. */
export const RING_SIZE = 1024;
const MASK = RING_SIZE - 1;

export class PendingChecks<T> {
  private readonly ids = new Float64Array(RING_SIZE).fill(-1);
  private readonly ring: Array<T | undefined> = Array.from({ length: RING_SIZE }, () => undefined);
  private readonly overflow = new Map<number, T>();
  private count = 0;

  /** Checks waiting. */
  get size(): number {
    return this.count;
  }

  /** `id` (a non-negative integer, new: ids are not reused while in flight) now waits with `value`. */
  add(id: number, value: T): void {
    const i = id & MASK;
    if (this.ids[i] === -1) {
      this.ids[i] = id;
      this.ring[i] = value;
    } else this.overflow.set(id, value);
    this.count++;
  }

  /**
   * The value `id` waits with, which stops waiting; undefined if it does not wait (answered, timed
   * out, unknown).
   */
  take(id: number): T | undefined {
    const i = id & MASK;
    if (this.ids[i] === id) {
      const v = this.ring[i];
      this.ids[i] = -1;
      this.ring[i] = undefined;
      this.count--;
      return v;
    }
    if (this.overflow.size === 0) return undefined;
    const v = this.overflow.get(id);
    if (v !== undefined) {
      this.overflow.delete(id);
      this.count--;
    }
    return v;
  }

  /** Every value waiting, which all stop waiting. */
  drain(): T[] {
    const out: T[] = [];
    for (let i = 0; i < RING_SIZE; i++) {
      if (this.ids[i] === -1) continue;
      out.push(this.ring[i]!);
      this.ids[i] = -1;
      this.ring[i] = undefined;
    }
    for (const v of this.overflow.values()) out.push(v);
    this.overflow.clear();
    this.count = 0;
    return out;
  }
}
