// `npm start`: the end-to-end demo. Until the broker relay lands (issue "Broker"), it states what it
// will run and checks the parts that exist today.
import { decodeMessage, encodeMessage } from "../port/codec.js";
import { SAMPLES } from "../port/codec-samples.js";

const plan = `agentsh-win demo (embedded defaults)

When the broker lands, this command will start, on this machine:
  1. a policy server on policy-server/policies/default.yaml (gRPC/Connect on loopback),
  2. the driver simulator (driver/sim) hosting the minifilter's portable C core,
  3. the broker, connected to the simulator through the fltlib.dll ABI (koffi) and to the server,
and replay an agent build workload with a live summary (decisions/s, allow/deny/approve, cache hit
ratio, p50/p99 latency, top denying rules). Options: --seconds N, --scenario server-outage.

Available today: the kernel/user wire contract (driver/inc/protocol.h) and its checked codec.`;

process.stdout.write(`${plan}\n\n`);
let ok = 0;
for (const m of SAMPLES) {
  const r = decodeMessage(encodeMessage(m));
  if (r.ok) ok++;
}
process.stdout.write(`codec self-check: ${ok}/${SAMPLES.length} message types round-trip\n`);
