/** What an operation touches. */
export type Kind = "file" | "registry";

/**
 * A path in canonical form. `keys` is what matching compares: upper-cased (Windows' table) name
 * components with the root first. File roots are a drive ("C:") or "\\\\" followed by server and
 * share for UNC paths; registry roots are "HKLM", "HKU" (then the SID or SID_CLASSES) or another
 * \REGISTRY child written as "\\REGISTRY\\<NAME>".
 */
export interface CanonicalPath {
  kind: Kind;
  keys: string[];
  /** Human form in the original case: "C:\\Users\\dev\\x", "HKLM\\SOFTWARE\\x", "\\\\srv\\share\\x". */
  display: string;
  /** File paths: a named stream or attribute stripped from the path (":Zone.Identifier:$DATA"). */
  stream?: string;
  /** File paths: indexes into keys of components that look like 8.3 short names (PROGRA~1). */
  shortNames?: number[];
}

/** A path that cannot be canonicalised, and why. Such a path is denied. */
export interface CanonicalFailure {
  error: string;
}

export type CanonicalResult = CanonicalPath | CanonicalFailure;

export function isFailure(r: CanonicalResult): r is CanonicalFailure {
  return (r as CanonicalFailure).error !== undefined;
}
