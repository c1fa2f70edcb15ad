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
import { parse as parseYaml, stringify } from "yaml";
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
  try {
    doc = parseYaml(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (err) {
    return { file, error: `cannot read test file: ${(err as Error).message}`, cases: [] };
  }
  if (typeof doc !== "object" || doc === null)
    return { file, error: "test file must be a mapping", cases: [] };
  const unknown = Object.keys(doc).filter((k) => !TOP.includes(k));
  if (unknown.length > 0)
    return { file, error: `unknown keys ${unknown.join(", ")} (known: ${TOP.join(", ")})`, cases: [] };
  let engine: PolicyEngine;
  let defaults: ReturnType<typeof sessionFromJson> | undefined;
  try {
    const volumes = doc.volumes === undefined ? undefined : volumesFromJson(doc.volumes, "volumes");
    const userSid = typeof doc.user_sid === "string" ? doc.user_sid : undefined;
    if (typeof doc.policy === "string") {
      const p = resolve(dirname(file), doc.policy);
      engine = PolicyEngine.fromText(readFileSync(p, "utf8"), { file: p, volumes, userSid });
    } else if (typeof doc.policy === "object" && doc.policy !== null) {
      engine = PolicyEngine.fromText(stringify(doc.policy), { file: `${file}#policy`, volumes, userSid });
    } else return { file, error: "policy: must be a path or an inline mapping", cases: [] };
    if (doc.session !== undefined) defaults = sessionFromJson(doc.session);
  } catch (err) {
    return { file, error: err instanceof PolicyError ? err.format() : (err as Error).message, cases: [] };
  }
  const cases = Array.isArray(doc.cases) ? doc.cases : [];
  if (cases.length === 0) return { file, error: "cases: must be a non-empty list", cases: [] };
  const results: CaseResult[] = [];
  cases.forEach((c: unknown, i: number) => {
    const rec = (c ?? {}) as Record<string, unknown>;
    const name = typeof rec.name === "string" ? rec.name : `case ${i + 1}`;
    const failures: string[] = [];
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
