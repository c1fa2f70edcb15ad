/** Why a buffer is not a valid message. One code per rule of protocol.h. */
export type CodecErrorCode =
  | "short_buffer" // fewer bytes than a header, a fixed part or a port header
  | "size_mismatch" // Header.Size disagrees with the bytes or with the type's size rule
  | "too_large" // Size or a string beyond the protocol's limits
  | "unknown_type" // Header.Type is not a message type
  | "bad_string" // an AGENTSH_STRING outside the message, misaligned, or overlapping the fixed part
  | "missing_terminator" // the code unit after a string is not NUL
  | "invalid_utf16" // an unpaired surrogate
  | "bad_count" // Count of EXCLUDE_PROCESS or DECISION_COUNTS_REPLY over the limit or disagreeing with Size
  | "bad_entry" // a DECISION_COUNTS_REPLY entry with an unknown value, a zero count, or out of slot order
  | "bad_value"; // a value that cannot be encoded (encode side)

/** The one error type of the codec: a code, a message naming what was wrong, and what was known. */
export class CodecError extends Error {
  override readonly name = "CodecError";
  constructor(
    readonly code: CodecErrorCode,
    message: string,
    /** The port MessageId when the FILTER_MESSAGE_HEADER could be read, so a reply is still possible. */
    readonly messageId?: bigint,
    /** Header.Type when it could be read. */
    readonly messageType?: number,
  ) {
    super(message);
  }
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: CodecError };
