/**
 * Message templates in the Go text/template subset the seeds use: `{{.Field}}` (spaces inside the
 * braces allowed). Unknown fields are an error when the policy loads, not when a message renders.
 */
import type { Template } from "./policy-types.js";

export const TEMPLATE_FIELDS = [
  "Path", // canonical path, original case
  "RequestPath", // the path as the request spelled it
  "Operation",
  "Kind",
  "Decision",
  "Rule",
  "Pattern",
  "Mitre",
  "ValueName",
  "RenameDest",
  "Workspace",
  "UserSid",
  "UserProfile",
  "Pid",
  "Name", // last component of Path
] as const;
export type TemplateField = (typeof TEMPLATE_FIELDS)[number];

const FIELD_SET: ReadonlySet<string> = new Set(TEMPLATE_FIELDS);

/** Compiles a template; returns an error string on failure. */
export function compileTemplate(source: string): Template | string {
  const parts: string[] = [];
  let i = 0;
  let text = "";
  while (i < source.length) {
    const open = source.indexOf("{{", i);
    if (open < 0) break;
    const close = source.indexOf("}}", open + 2);
    if (close < 0) return `unterminated "{{" at offset ${open}`;
    const inner = source.slice(open + 2, close).trim();
    const m = /^\.([A-Za-z]+)$/.exec(inner);
    if (!m) return `unsupported template action "{{${inner}}}" (use {{.Field}})`;
    if (!FIELD_SET.has(m[1]!))
      return `unknown template field .${m[1]} (known: ${TEMPLATE_FIELDS.join(", ")})`;
    text += source.slice(i, open);
    parts.push(text, m[1]!);
    text = "";
    i = close + 2;
  }
  parts.push(text + source.slice(i));
  return { source, parts };
}

export function renderTemplate(t: Template, fields: Partial<Record<TemplateField, string>>): string {
  const p = t.parts;
  let out = p[0]!;
  for (let i = 1; i < p.length; i += 2) out += (fields[p[i] as TemplateField] ?? "") + p[i + 1]!;
  return out;
}
