// The reads of one port connection, the way Windows servers read a busy port (Microsoft's scanner
// minifilter sample does the same): `count` overlapped FilterGetMessage calls stay pending, so the
// driver never waits for a reader, and their completions are collected from a completion port by
// one wait on libuv's thread pool (GetQueuedCompletionStatusEx), many at once under load. A burst
// of messages costs the main thread one wake-up instead of one per message, and only one pool
// thread is ever blocked, however many reads are pending.
//
// Memory: message buffers, OVERLAPPEDs and completion entries live in one native allocation that
// the kernel (or the simulator) writes after the calls return; it is freed only when every read has
// completed and no wait is in flight.
import type { FltLib, NativeMemory } from "./port-fltlib.js";
import { HR, hresult } from "./port-hresult.js";
import { PORT_BUFFER_SIZE, PORT_HEADER_SIZE } from "./protocol.js";

/** x64 OVERLAPPED and OVERLAPPED_ENTRY (minwinbase.h). */
const OVERLAPPED_SIZE = 32;
const ENTRY_SIZE = 32;
const ENTRY_OVERLAPPED = 8;
const ENTRY_INTERNAL = 16;
const ENTRY_BYTES = 24;
/** Completions taken per wait. */
const MAX_ENTRIES = 64;
const READ_KEY = 1;
const WAKE_KEY = 2;

export const MAX_PENDING_READS = 64;

export interface PortReaderEvents {
  /** A message (FILTER_MESSAGE_HEADER + message, copied out of the read buffer). */
  onMessage(bytes: Uint8Array): void;
  /** The port failed under a read (its HRESULT or NTSTATUS); called once. */
  onLost(where: string, code: number): void;
}

export class PortReader {
  private readonly port: bigint;
  private readonly mem: NativeMemory;
  private readonly view: DataView;
  // Layout of `mem`: count message buffers, count OVERLAPPEDs, MAX_ENTRIES entries, the count removed.
  private readonly overlappedAt: number;
  private readonly entriesAt: number;
  private readonly removedAt: number;
  /** Native addresses of each read's buffer and OVERLAPPED, and of the wait's arguments. */
  private readonly bufferAddr: bigint[] = [];
  private readonly overlappedAddr: bigint[] = [];
  private readonly entriesAddr: bigint;
  private readonly removedAddr: bigint;
  /** Low 32 bits of the first OVERLAPPED's address (entries name reads by address). */
  private readonly overlappedLow: number;
  private pending = 0;
  private waiting = false;
  private stopping = false;
  private lost = false;

  /** Associates the port handle with a new completion port; throws when that fails. */
  constructor(
    private readonly lib: FltLib,
    private readonly handle: bigint,
    private readonly count: number,
    private readonly events: PortReaderEvents,
  ) {
    if (!Number.isInteger(count) || count < 1 || count > MAX_PENDING_READS) {
      throw new Error(`pending port reads must be 1..${MAX_PENDING_READS}, got ${count}`);
    }
    this.port = lib.createCompletionPort(handle, READ_KEY);
    if (this.port === 0n) throw new Error("CreateIoCompletionPort failed for the filter port");
    this.overlappedAt = count * PORT_BUFFER_SIZE;
    this.entriesAt = this.overlappedAt + count * OVERLAPPED_SIZE;
    this.removedAt = this.entriesAt + MAX_ENTRIES * ENTRY_SIZE;
    this.mem = lib.alloc(this.removedAt + 8);
    this.view = new DataView(this.mem.bytes.buffer, this.mem.bytes.byteOffset, this.mem.bytes.byteLength);
    const addr = (offset: number) => this.mem.address + BigInt(offset);
    for (let i = 0; i < count; i++) {
      this.bufferAddr.push(addr(i * PORT_BUFFER_SIZE));
      this.overlappedAddr.push(addr(this.overlappedAt + i * OVERLAPPED_SIZE));
    }
    this.entriesAddr = addr(this.entriesAt);
    this.removedAddr = addr(this.removedAt);
    this.overlappedLow = Number(BigInt.asUintN(32, this.overlappedAddr[0]!));
  }

  /** Issues every read and starts collecting completions. */
  start(): void {
    for (let i = 0; i < this.count && !this.lost; i++) this.issue(i);
    this.wait();
  }

  /**
   * No more reads are issued. The caller closes the port handle next, which completes (cancels) the
   * pending ones; the memory and the completion port are released after the last completes.
   */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    if (this.waiting)
      this.lib.postCompletion(this.port, WAKE_KEY); // a wait with nothing pending returns
    else if (this.pending === 0) this.release();
  }

  private release(): void {
    this.lib.closeCompletionPort(this.port);
    this.mem.free();
  }

  private issue(i: number): void {
    // A fresh OVERLAPPED for every request (its unused members must be zero; the scanner sample
    // clears it the same way).
    const ov = this.overlappedAt + i * OVERLAPPED_SIZE;
    this.mem.bytes.fill(0, ov, ov + OVERLAPPED_SIZE);
    const hr = hresult(
      this.lib.getMessageOverlapped(
        this.handle,
        this.bufferAddr[i]!,
        PORT_BUFFER_SIZE,
        this.overlappedAddr[i]!,
      ),
    );
    // S_OK: completed at once; its completion is queued all the same
    if (hr === HR.ERROR_IO_PENDING || hr === HR.S_OK) this.pending++;
    else this.fail("FilterGetMessage", hr);
  }

  private wait(): void {
    this.waiting = true;
    this.lib.waitCompletionsAsync(this.port, this.entriesAddr, MAX_ENTRIES, this.removedAddr, (ok) =>
      this.onCompletions(ok),
    );
  }

  private onCompletions(ok: boolean): void {
    this.waiting = false;
    const n = ok ? this.view.getUint32(this.removedAt, true) : 0;
    for (let j = 0; j < n; j++) {
      const e = this.entriesAt + j * ENTRY_SIZE;
      if (this.view.getUint32(e, true) !== READ_KEY) continue; // a wake-up
      const i =
        ((this.view.getUint32(e + ENTRY_OVERLAPPED, true) - this.overlappedLow) >>> 0) / OVERLAPPED_SIZE;
      if (!Number.isInteger(i) || i >= this.count) continue; // not one of ours (cannot happen)
      this.pending--;
      const status = this.view.getUint32(e + ENTRY_INTERNAL, true);
      if (status !== 0) {
        if (!this.stopping) this.fail("FilterGetMessage completion", status);
        continue;
      }
      // The message's own size (its header's Size field) bounds the copy, as the byte count of the
      // completion may; a nonsense size copies the whole buffer and the decoder says what is wrong.
      const at = i * PORT_BUFFER_SIZE;
      const transferred = this.view.getUint32(e + ENTRY_BYTES, true);
      const size = PORT_HEADER_SIZE + this.view.getUint32(at + PORT_HEADER_SIZE + 4, true);
      const len =
        size >= PORT_HEADER_SIZE + 16 &&
        size <= PORT_BUFFER_SIZE &&
        (transferred === 0 || size <= transferred)
          ? size
          : PORT_BUFFER_SIZE;
      const bytes = this.mem.bytes.slice(at, at + len);
      if (!this.stopping) this.issue(i);
      this.events.onMessage(bytes);
    }
    if (this.stopping && this.pending === 0) this.release();
    else if (ok) this.wait();
    // A failed wait: the completion port is unusable. The reads still pending keep their memory
    // (the kernel may yet write into it), so it is never freed; the port is reconnected.
    else if (!this.stopping) this.fail("GetQueuedCompletionStatusEx", HR.E_HANDLE);
  }

  private fail(where: string, code: number): void {
    if (this.lost) return;
    this.lost = true;
    this.events.onLost(where, code);
  }
}
