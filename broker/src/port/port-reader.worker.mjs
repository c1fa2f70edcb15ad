// A reader thread of the port client: blocks in FilterGetMessage (synchronously, so the broker's
// main thread and libuv's pool never wait on it) and hands each message to the main thread. It is
// started before the port connects and serves every connection in turn: the main thread posts
// { handle, gen } after each connect (gen is echoed, as handle values may be reused); the thread reads until FilterGetMessage fails (the handle was
// closed, the port was lost), reports that, and waits for the next handle. Plain JavaScript so it
// runs in a worker without a TypeScript loader.
import { parentPort, workerData } from "node:worker_threads";
import koffi from "koffi";

const { libraryPath, prototype, bufferSize } = workerData;
const getMessage = koffi.load(libraryPath).func(prototype);
const buf = Buffer.alloc(bufferSize);
const HEADERS = 16;

function serve(handle, gen) {
  for (;;) {
    const hr = getMessage(handle, buf, bufferSize, null) >>> 0;
    if (hr !== 0) {
      parentPort.postMessage({ handle, gen, hr });
      return;
    }
    // FILTER_MESSAGE_HEADER (16) + message; hand over exactly 16 + Header.Size bytes when plausible.
    const size = buf.readUInt32LE(HEADERS + 4);
    const n = size >= 16 && HEADERS + size <= bufferSize ? HEADERS + size : bufferSize;
    const copy = new ArrayBuffer(n);
    new Uint8Array(copy).set(buf.subarray(0, n));
    parentPort.postMessage({ handle, gen, hr: 0, data: copy }, [copy]);
  }
}

parentPort.on("message", (m) => serve(m.handle, m.gen));
parentPort.postMessage({ ready: true });
