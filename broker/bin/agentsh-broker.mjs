#!/usr/bin/env node
// Runs the TypeScript CLI through tsx's loader (no build step).
import { register } from "tsx/esm/api";

// FilterGetMessage calls block threads of libuv's pool (port-client.ts): size it before first use so
// DNS, file and crypto work keep threads of their own (readers are at most 12; see config.ts).
process.env.UV_THREADPOOL_SIZE ??= "16";

register();
await import("../src/cli.ts");
