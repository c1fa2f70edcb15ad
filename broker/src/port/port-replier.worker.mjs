// The replier thread of the port client: calls FilterReplyMessage for the main thread, which only
// posts the 48-byte reply buffer (a blocking call, short on Windows, a round trip to the simulator
// elsewhere; neither belongs on the main thread). Only failures are reported back.
import { parentPort, workerData } from "node:worker_threads";
import koffi from "koffi";

const { libraryPath, prototype } = workerData;
const reply = koffi.load(libraryPath).func(prototype);

parentPort.on("message", (m) => {
  const hr = reply(m.handle, Buffer.from(m.buffer), m.buffer.byteLength) >>> 0;
  if (hr !== 0) parentPort.postMessage({ handle: m.handle, messageId: m.messageId, hr });
});
