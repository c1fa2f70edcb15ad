// Driver group: builds and runs the C benchmarks (driver/bench/*.c through `make bench`): the
// decision cache's hit and miss cost in the portable core, and the simulator's round trip through
// the emulated filter port to a trivial user-mode responder. The make target prints one JSON object
// on its last line; its other lines go to the log.
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import type { BenchGroup } from "../../test/bench/main.js";

const run: BenchGroup = async ({ log }) => {
  const r = spawnSync("make", ["-C", resolve(import.meta.dirname, ".."), "--no-print-directory", "bench"], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`make bench failed:\n${r.stdout}\n${r.stderr}`);
  const lines = r.stdout.trim().split("\n");
  for (const l of lines.slice(0, -1)) log(l);
  return JSON.parse(lines.at(-1)!) as Record<string, number>;
};
export default run;
