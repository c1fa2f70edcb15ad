/**
 * Policy test files, like `opa test`: a policy (a path relative to the test file, or inline) and
 * cases with the expected decision. Format (YAML):
 *
 *   policy: ../policies/default.yaml      # or an inline mapping: policy: {version: 1, ...}
 *   volumes: ['C:=\Device\HarddiskVolume3']
 *   session: {workspace: 'C:\w', user_sid: 'S-1-5-21-1-2-3-1001', user_profile: 'C:\Users\dev'}
 *   cases:
 *     - name: workspace writes are allowed
 *       kind: file                         # default file
 *       operation: write
 *       path: '\Device\HarddiskVolume3\w\a.txt'
 *       rename_dest: ...                   # value_name, pid, session, volumes as in `check`
 *       expect: allow                      # or a mapping of fields of the `check` output:
 *       # expect: {decision: deny, rule: secrets, mitre: T1547.001, decided_side: destination,
 *       #          message: 'substring of the message', cache_ttl_ms: 60000, ...}
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { isNode, LineCounter, parseDocument } from "yaml";
import { PolicyEngine } from "./engine.js";
import { checkInputFromJson, decisionToJson, sessionFromJson, volumesFromJson } from "./engine-input.js";
import { PolicyError } from "./policy-error.js";

export interface CaseResult {
  file: string;
  name: string;
  ok: boolean;
  failures: string[];
}

export interface TestFileResult {
  file: string;
  error?: string;
  cases: CaseResult[];
}

const TOP = ["policy", "volumes", "session", "cases", "user_sid"];

export function runTestFile(file: string): TestFileResult {
  let doc: Record<string, unknown>;
  let inlinePolicy: string | undefined;
  try {
    const src = readFileSync(file, "utf8");
    const lines = new LineCounter();
    const parsed = parseDocument(src, { lineCounter: lines });
    if (parsed.errors.length > 0) throw parsed.errors[0];
    doc = parsed.toJS() as Record<string, unknown>;
    // An inline policy is read from the test file's own text, where it is (the lines before it
    // blank, its first line indented as in the file), so its diagnostics give the file's lines and
    // columns.
    const node =
      parsed.contents && "get" in parsed.contents ? parsed.contents.get("policy", true) : undefined;
    if (isNode(node) && node.range && typeof doc.policy === "object") {
      const [start, end] = node.range;
      const at = lines.linePos(start);
      inlinePolicy = "\n".repeat(at.line - 1) + " ".repeat(at.col - 1) + src.slice(start, end);
    }
  } catch (err) {
    return { file, error: `cannot read test file: ${(err as Error).message}`, cases: [] };
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc))
    return { file, error: "test file must be a mapping", cases: [] };
  const unknown = Object.keys(doc).filter((k) => !TOP.includes(k));
  if (unknown.length > 0)
    return { file, error: `unknown keys ${unknown.join(", ")} (known: ${TOP.join(", ")})`, cases: [] };
  let engine: PolicyEngine;
  let defaults: ReturnType<typeof sessionFromJson> | undefined;
  try {
    const volumes = doc.volumes === undefined ? undefined : volumesFromJson(doc.volumes, "volumes");
    if (doc.user_sid !== undefined && typeof doc.user_sid !== "string")
      return { file, error: "user_sid: must be a SID (a string such as S-1-5-21-...)", cases: [] };
    const userSid = doc.user_sid;
    if (doc.session !== undefined) defaults = sessionFromJson(doc.session);
    if (typeof doc.policy === "string") {
      const p = resolve(dirname(file), doc.policy);
      let text: string;
      try {
        text = readFileSync(p, "utf8");
      } catch (err) {
        return { file, error: `policy: cannot read ${p}: ${(err as Error).message}`, cases: [] };
      }
      engine = PolicyEngine.fromText(text, { file: p, volumes, userSid });
    } else if (inlinePolicy !== undefined && !Array.isArray(doc.policy)) {
      engine = PolicyEngine.fromText(inlinePolicy, { file, volumes, userSid });
    } else return { file, error: "policy: must be a path or an inline mapping", cases: [] };
  } catch (err) {
    // Policy errors carry their file, line and column; the test file's own fields are named.
    if (err instanceof PolicyError && err.line !== undefined) return { file, error: err.format(), cases: [] };
    return { file, error: (err as Error).message, cases: [] };
  }
  const cases = Array.isArray(doc.cases) ? doc.cases : [];
  if (cases.length === 0) return { file, error: "cases: must be a non-empty list", cases: [] };
  const results: CaseResult[] = [];
  cases.forEach((c: unknown, i: number) => {
    const rec = (c ?? {}) as Record<string, unknown>;
    const name = typeof rec.name === "string" ? rec.name : `case ${i + 1}`;
    const failures: string[] = [];
    if (typeof c !== "object" || c === null || Array.isArray(c)) {
      results.push({
        file,
        name,
        ok: false,
        failures: [`cases[${i}]: must be a mapping, got ${JSON.stringify(c)}`],
      });
      return;
    }
    try {
      const { expect: expected, name: _n, ...req } = rec;
      const input = checkInputFromJson(req);
      if (!input.session && defaults) input.session = defaults;
      const got = decisionToJson(engine.decide(input));
      const want: Record<string, unknown> =
        typeof expected === "string" ? { decision: expected } : ((expected ?? {}) as Record<string, unknown>);
      if (Object.keys(want).length === 0) failures.push("expect: missing");
      for (const [k, v] of Object.entries(want)) {
        const g = got[k];
        const ok =
          k === "message"
            ? typeof g === "string" && g.includes(String(v))
            : g === v || (g === undefined && v === "");
        if (!ok) failures.push(`${k}: want ${JSON.stringify(v)}, got ${JSON.stringify(g)}`);
      }
      if (failures.length > 0) failures.push(`(decision: ${JSON.stringify(got)})`);
    } catch (err) {
      failures.push(err instanceof PolicyError ? err.message : String(err));
    }
    results.push({ file, name, ok: failures.length === 0, failures });
  });
  return { file, cases: results };
}
