// The fltlib.dll ABI through koffi: fltlib.dll (and kernel32.dll) on Windows, the simulator's
// libfltsim.so elsewhere (same exported names and C signatures). HANDLEs are passed as uintptr_t so
// that calls on other threads (koffi async) can use them as plain numbers. Overlapped reads use
// memory the broker allocates outside the JavaScript heap (the kernel writes into it after the call
// returns), addressed as uintptr_t too.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import koffi from "koffi";

export interface FltLib {
  /** Path of the library that was loaded. */
  readonly path: string;
  connect(portName: string, context: Buffer): { hr: number; handle: bigint };
  send(handle: bigint, input: Buffer, output: Buffer | null): { hr: number; bytesReturned: number };
  reply(handle: bigint, reply: Buffer): number;
  /** FilterGetMessage with an OVERLAPPED (both addresses of native memory): the HRESULT, normally
   * ERROR_IO_PENDING; the completion goes to the port's completion port. */
  getMessageOverlapped(handle: bigint, buffer: bigint, size: number, overlapped: bigint): number;
  /** CreateIoCompletionPort(handle, NULL, key, 1): a new completion port associated with the port
   * handle; 0n on failure. */
  createCompletionPort(handle: bigint, key: number): bigint;
  /** GetQueuedCompletionStatusEx(port, entries, count, removed, INFINITE, FALSE) on libuv's thread
   * pool; `done` gets its BOOL. */
  waitCompletionsAsync(
    port: bigint,
    entries: bigint,
    count: number,
    removed: bigint,
    done: (ok: boolean) => void,
  ): void;
  /** PostQueuedCompletionStatus(port, 0, key, NULL): wakes the waiter. */
  postCompletion(port: bigint, key: number): boolean;
  /** CloseHandle of a completion port. */
  closeCompletionPort(port: bigint): void;
  /** Native memory, not initialised (freed only by `free`; pages never written stay unallocated). */
  alloc(size: number): NativeMemory;
  close(handle: bigint): number;
  /** Cancels the pending reads before close (CancelIoEx on Windows; the simulator's close does it). */
  cancel(handle: bigint): void;
  /** QueryDosDeviceW("C:") -> ["\\Device\\HarddiskVolume3"], [] when unknown. */
  queryDosDevice(drive: string): string[];
}

export interface NativeMemory {
  readonly address: bigint;
  readonly bytes: Uint8Array;
  free(): void;
}

/** driver/build/libfltsim.so, from the sources (broker/src/port) or from the bundle (broker/dist). */
export const DEFAULT_SIM_LIBRARY =
  ["../../../driver/build/libfltsim.so", "../../driver/build/libfltsim.so"]
    .map((p) => resolve(import.meta.dirname, p))
    .find((p) => existsSync(p)) ?? resolve(import.meta.dirname, "../../../driver/build/libfltsim.so");

/** Where the fltlib ABI comes from: AGENTSH_FLTLIB, else fltlib.dll on Windows, else the simulator. */
export function fltLibPath(explicit?: string): string {
  if (explicit) return explicit;
  if (process.env.AGENTSH_FLTLIB) return process.env.AGENTSH_FLTLIB;
  return process.platform === "win32" ? "fltlib.dll" : DEFAULT_SIM_LIBRARY;
}

/** The koffi prototypes of the fltlib ABI (and kernel32 on Windows). */
export const PROTOTYPES = {
  connect:
    "int32_t FilterConnectCommunicationPort(const char16_t *lpPortName, uint32_t dwOptions, const void *lpContext, uint16_t wSizeOfContext, void *lpSecurityAttributes, _Out_ uintptr_t *hPort)",
  reply: "int32_t FilterReplyMessage(uintptr_t hPort, const void *lpReplyBuffer, uint32_t dwReplyBufferSize)",
  send: "int32_t FilterSendMessage(uintptr_t hPort, const void *lpInBuffer, uint32_t dwInBufferSize, void *lpOutBuffer, uint32_t dwOutBufferSize, _Out_ uint32_t *lpBytesReturned)",
  close: "int32_t FilterClose(uintptr_t hPort)",
  queryDosDevice:
    "uint32_t QueryDosDeviceW(const char16_t *lpDeviceName, void *lpTargetPath, uint32_t ucchMax)",
  cancelIoEx: "int32_t CancelIoEx(uintptr_t hFile, void *lpOverlapped)",
  getOverlapped:
    "int32_t FilterGetMessage(uintptr_t hPort, uintptr_t lpMessageBuffer, uint32_t dwMessageBufferSize, uintptr_t lpOverlapped)",
  createIoCompletionPort:
    "uintptr_t CreateIoCompletionPort(uintptr_t FileHandle, uintptr_t ExistingCompletionPort, uintptr_t CompletionKey, uint32_t NumberOfConcurrentThreads)",
  getQueuedCompletionStatusEx:
    "int32_t GetQueuedCompletionStatusEx(uintptr_t CompletionPort, uintptr_t lpCompletionPortEntries, uint32_t ulCount, uintptr_t ulNumEntriesRemoved, uint32_t dwMilliseconds, int32_t fAlertable)",
  postQueuedCompletionStatus:
    "int32_t PostQueuedCompletionStatus(uintptr_t CompletionPort, uint32_t dwNumberOfBytesTransferred, uintptr_t dwCompletionKey, uintptr_t lpOverlapped)",
  closeHandle: "int32_t CloseHandle(uintptr_t hObject)",
} as const;

const INFINITE = 0xffffffff;

export function loadFltLib(path = fltLibPath()): FltLib {
  if (path.includes("/") && !existsSync(path)) {
    throw new Error(`fltlib ABI library not found at ${path} (build the simulator with: make -C driver)`);
  }
  const lib = koffi.load(path);
  const kernel32 = process.platform === "win32" ? koffi.load("kernel32.dll") : null;
  const connect = lib.func(PROTOTYPES.connect);
  const send = lib.func(PROTOTYPES.send);
  const reply = lib.func(PROTOTYPES.reply);
  const close = lib.func(PROTOTYPES.close);
  const qdd = (kernel32 ?? lib).func(PROTOTYPES.queryDosDevice);
  const cancelIoEx = kernel32?.func(PROTOTYPES.cancelIoEx);
  // completion ports: kernel32 on Windows, the simulator's library elsewhere
  const getOverlapped = lib.func(PROTOTYPES.getOverlapped);
  const createIocp = (kernel32 ?? lib).func(PROTOTYPES.createIoCompletionPort);
  const gqcsEx = (kernel32 ?? lib).func(PROTOTYPES.getQueuedCompletionStatusEx);
  const postQcs = (kernel32 ?? lib).func(PROTOTYPES.postQueuedCompletionStatus);
  const closeHandle = (kernel32 ?? lib).func(PROTOTYPES.closeHandle);
  return {
    path,
    connect(portName, context) {
      const out = [0n];
      const hr = connect(portName, 0, context, context.length, null, out) as number;
      return { hr, handle: BigInt(out[0] as number | bigint) };
    },
    send(handle, input, output) {
      const bytes = [0];
      const hr = send(handle, input, input.length, output, output?.length ?? 0, bytes) as number;
      return { hr, bytesReturned: bytes[0] as number };
    },
    reply(handle, buf) {
      return reply(handle, buf, buf.length) as number;
    },
    getMessageOverlapped(handle, buffer, size, overlapped) {
      return getOverlapped(handle, buffer, size, overlapped) as number;
    },
    createCompletionPort(handle, key) {
      return BigInt(createIocp(handle, 0, key, 1) as number | bigint);
    },
    waitCompletionsAsync(port, entries, count, removed, done) {
      gqcsEx.async(port, entries, count, removed, INFINITE, 0, (err: unknown, ok: number) =>
        done(!err && ok !== 0),
      );
    },
    postCompletion(port, key) {
      return (postQcs(port, 0, key, 0) as number) !== 0;
    },
    closeCompletionPort(port) {
      closeHandle(port);
    },
    alloc(size) {
      const ptr = koffi.alloc("uint8_t", size);
      const bytes = new Uint8Array(koffi.view(ptr, size));
      return { address: koffi.address(ptr), bytes, free: () => koffi.free(ptr) };
    },
    close(handle) {
      return close(handle) as number;
    },
    cancel(handle) {
      cancelIoEx?.(handle, null);
    },
    queryDosDevice(drive) {
      const buf = Buffer.alloc(2 * 1024);
      const n = qdd(drive, buf, 1024) as number;
      if (!n) return [];
      return buf
        .toString("utf16le", 0, 2 * n)
        .split("\u0000")
        .filter((s) => s.length > 0);
    },
  };
}
