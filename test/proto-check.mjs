#!/usr/bin/env node
// The network API's checks: buf lint, buf format, buf breaking against the previous commit, and the
// committed protoc-gen-es output equal to a fresh generation. Buf runs from the npm package with no
// remote dependencies.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { ROOT } from "./setup/ensure.mjs";

const env = { ...process.env, PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` };
let ok = true;

function run(what, args) {
  const r = spawnSync("buf", args, { cwd: ROOT, env, encoding: "utf8" });
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
  if (r.status !== 0) {
    ok = false;
    process.stdout.write(`FAIL ${what}\n${out}\n`);
  } else {
    process.stdout.write(`ok   ${what}\n`);
  }
  return r.status === 0;
}

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else out.push(p);
  }
  return out;
}

run("buf lint", ["lint"]);
run("buf format", ["format", "--diff", "--exit-code"]);

const hasPrev =
  spawnSync("git", ["cat-file", "-e", "HEAD~1:buf.yaml"], { cwd: ROOT, stdio: "ignore" }).status === 0;
if (hasPrev) run("buf breaking (against HEAD~1)", ["breaking", "--against", ".git#ref=HEAD~1"]);
else process.stdout.write("--   buf breaking: the previous commit has no buf.yaml, nothing to compare\n");

const out = mkdtempSync(join(tmpdir(), "agentsh-proto-"));
if (run("buf generate", ["generate", "--output", out])) {
  const committed = join(ROOT, "proto", "gen");
  const fresh = join(out, "proto", "gen");
  const a = files(committed)
    .map((f) => relative(committed, f))
    .sort();
  const b = files(fresh)
    .map((f) => relative(fresh, f))
    .sort();
  const stale = b.filter(
    (f) =>
      !a.includes(f) || readFileSync(join(committed, f), "utf8") !== readFileSync(join(fresh, f), "utf8"),
  );
  const extra = a.filter((f) => !b.includes(f));
  if (stale.length || extra.length) {
    ok = false;
    process.stdout.write(
      `FAIL generated code is out of date (run npm run proto:gen): ${[...stale, ...extra].join(", ")}\n`,
    );
  } else {
    process.stdout.write(`ok   generated code up to date (${b.length} files)\n`);
  }
}
process.exit(ok ? 0 : 1);
