import { status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";

/**
 * Why a check did not get a policy answer. "deadline" and "unavailable" (and "internal") are the
 * server's fault and count towards the breaker; "invalid" is the request's and is answered deny.
 */
export type RelayErrorCode = "deadline" | "unavailable" | "invalid" | "internal";

export class RelayError extends Error {
  override readonly name = "RelayError";
  constructor(
    readonly code: RelayErrorCode,
    message: string,
  ) {
    super(message);
  }

  /** Worth one more try on another replica (if the budget allows). */
  get retryable(): boolean {
    return this.code === "unavailable" || this.code === "internal";
  }
}

export function fromGrpc(e: unknown): RelayError {
  if (e instanceof RelayError) return e;
  const se = e as Partial<ServiceError>;
  const details = se.details || se.message || String(e);
  switch (se.code) {
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new RelayError("deadline", details);
    case GrpcStatus.INVALID_ARGUMENT:
    case GrpcStatus.FAILED_PRECONDITION:
    case GrpcStatus.OUT_OF_RANGE:
      return new RelayError("invalid", details);
    case GrpcStatus.UNAVAILABLE:
    case GrpcStatus.CANCELLED:
    case GrpcStatus.RESOURCE_EXHAUSTED:
    case GrpcStatus.ABORTED:
      return new RelayError("unavailable", details);
    default:
      return new RelayError("internal", details);
  }
}
