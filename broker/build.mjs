#!/usr/bin/env node
// `npm run build`: the broker as one ES module, broker/dist/agentsh-broker.mjs, for running without tsx: what a Windows service runs, and what the e2e
// benchmark measures. Dependencies from node_modules stay external; the workspace packages
// (@agentsh/proto, @agentsh/telemetry) are bundled in. Run it as
//   node --max-semi-space-size=1 --v8-pool-size=1 broker/dist/agentsh-broker.mjs run
// (the flags keep the resident set under 100 MB, see the README's benchmarks).
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";

const here = import.meta.dirname;
const pkg = JSON.parse(readFileSync(join(here, "package.json"), "utf8"));
const external = Object.keys(pkg.dependencies).filter((d) => !d.startsWith("@agentsh/"));
const dist = join(here, "dist");
mkdirSync(dist, { recursive: true });
await build({
  entryPoints: [join(here, "src/cli.ts")],
  outfile: join(dist, "agentsh-broker.mjs"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: [...external, ...external.map((d) => `${d}/*`)],
  // CommonJS dependencies loaded from ESM need a require.
  banner: {
    js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
  },
  logLevel: "warning",
});
process.stdout.write(`built ${join(dist, "agentsh-broker.mjs")}\n`);
