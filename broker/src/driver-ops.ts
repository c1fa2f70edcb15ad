// The policy check's kind and operation for a driver request's (protocol.h): file and registry
// operations map onto the five operations a policy speaks of. Shared by the decision path and the
// driver's decision counts (telemetry-metrics.ts), which label both alike.
import { Kind, Operation } from "@agentsh/proto";
import { Kind as DriverKind, FileOp, RegOp } from "./port/protocol.js";

export const FILE_OPS: Record<number, Operation> = {
  [FileOp.CREATE]: Operation.CREATE,
  [FileOp.READ]: Operation.READ,
  [FileOp.WRITE]: Operation.WRITE,
  [FileOp.DELETE]: Operation.DELETE,
  [FileOp.RENAME]: Operation.RENAME,
  // A hard link is judged like a rename: the source may not gain a name the policy forbids, and
  // the destination must be creatable (driver_operation tells the server it was a link).
  [FileOp.LINK]: Operation.RENAME,
};

export const REG_OPS: Record<number, Operation> = {
  [RegOp.CREATE_KEY]: Operation.CREATE,
  [RegOp.OPEN_KEY]: Operation.READ,
  [RegOp.SET_VALUE]: Operation.WRITE,
  [RegOp.DELETE_KEY]: Operation.DELETE,
  [RegOp.DELETE_VALUE]: Operation.DELETE,
  [RegOp.RENAME_KEY]: Operation.RENAME,
  [RegOp.QUERY_VALUE]: Operation.READ,
};

/** The check's kind and operation of a driver kind and operation (UNSPECIFIED for unknown ones). */
export function checkKindOperation(kind: number, op: number): { kind: Kind; operation: Operation } {
  if (kind === DriverKind.FILE) return { kind: Kind.FILE, operation: FILE_OPS[op] ?? Operation.UNSPECIFIED };
  if (kind === DriverKind.REGISTRY)
    return { kind: Kind.REGISTRY, operation: REG_OPS[op] ?? Operation.UNSPECIFIED };
  return { kind: Kind.UNSPECIFIED, operation: Operation.UNSPECIFIED };
}
