#!/usr/bin/env node
// Launches the TypeScript CLI through tsx (a dev dependency of the workspace), so it works from a
// fresh clone after `npm install` without a build step.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli.ts");
process.exitCode = await main(process.argv.slice(2));
