// A reader thread of the port client: blocks in FilterGetMessage (synchronously, so the broker's
// main thread and libuv's pool never wait on it) and hands each message to the main thread. Plain
// JavaScript so it runs in a worker without a TypeScript loader.
import { parentPort, workerData } from "node:worker_threads";
import koffi from "koffi";

const { libraryPath, prototype, handle, bufferSize } = workerData;
const lib = koffi.load(libraryPath);
const getMessage = lib.func(prototype);
const buf = Buffer.alloc(bufferSize);
const HEADERS = 16;

for (;;) {
  const hr = getMessage(handle, buf, bufferSize, null) >>> 0;
  if (hr !== 0) {
    parentPort.postMessage({ hr });
    break;
  }
  // FILTER_MESSAGE_HEADER (16) + message; hand over exactly 16 + Header.Size bytes when plausible.
  const size = buf.readUInt32LE(HEADERS + 4);
  const n = size >= 16 && HEADERS + size <= bufferSize ? HEADERS + size : bufferSize;
  const copy = new ArrayBuffer(n);
  new Uint8Array(copy).set(buf.subarray(0, n));
  parentPort.postMessage({ hr: 0, data: copy }, [copy]);
}
