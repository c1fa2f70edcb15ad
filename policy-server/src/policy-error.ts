/**
 * The one error type of the policy server. `code` says what kind of failure it is; `file`, `line`
 * and `column` (1-based) locate it in a policy or test file when it comes from one.
 */
export type PolicyErrorCode =
  | "syntax" // YAML could not be parsed
  | "schema" // YAML parsed but does not follow the policy language
  | "pattern" // a rule pattern cannot be canonicalised
  | "io" // file could not be read
  | "invalid_argument" // a request is malformed
  | "internal";

export interface SourcePosition {
  file?: string;
  line: number;
  column: number;
}

export class PolicyError extends Error {
  override name = "PolicyError";
  readonly code: PolicyErrorCode;
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly column: number | undefined;
  /** Further problems found in the same pass (the first one is this error itself). */
  readonly diagnostics: readonly Diagnostic[];

  constructor(
    code: PolicyErrorCode,
    message: string,
    opts: { position?: SourcePosition; diagnostics?: readonly Diagnostic[]; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.file = opts.position?.file;
    this.line = opts.position?.line;
    this.column = opts.position?.column;
    this.diagnostics = opts.diagnostics ?? [];
  }

  /** `file:line:column: message`, the form editors and compilers use. */
  format(): string {
    return this.diagnostics.length > 0
      ? this.diagnostics.map(formatDiagnostic).join("\n")
      : formatDiagnostic({
          severity: "error",
          code: this.code,
          message: this.message,
          file: this.file,
          line: this.line ?? 0,
          column: this.column ?? 0,
        });
  }
}

/** One problem in a policy file, with where it is. */
export interface Diagnostic {
  severity: "error" | "warning";
  code: PolicyErrorCode | "unknown_key" | "shadowed" | "lint";
  message: string;
  file: string | undefined;
  line: number;
  column: number;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.line > 0 ? `${d.file ?? "<policy>"}:${d.line}:${d.column}` : (d.file ?? "<policy>");
  return `${where}: ${d.severity}: ${d.message}`;
}
