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

/** Start and end offsets of the components of a path being canonicalised. */
export interface ComponentBounds {
  starts: Int32Array;
  ends: Int32Array;
}

let bounds: ComponentBounds = { starts: new Int32Array(256), ends: new Int32Array(256) };

/**
 * Scratch offsets for at least `n` components, shared by the file and registry canonicalisers and
 * reused from call to call (canonicalisation is not re-entrant: one path at a time).
 */
export function componentBounds(n: number): ComponentBounds {
  if (n > bounds.starts.length) bounds = { starts: new Int32Array(n), ends: new Int32Array(n) };
  return bounds;
}
