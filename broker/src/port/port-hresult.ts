// HRESULTs the port client meets, compared as unsigned 32-bit values (koffi returns HRESULT, a
// LONG, as a signed number; `>>> 0` makes 0x801F0020 compare equal however it arrived).
export const S_OK = 0;
const fromWin32 = (code: number) => (0x80070000 | code) >>> 0;

export const HR = {
  S_OK,
  E_INVALIDARG: 0x80070057,
  E_HANDLE: 0x80070006,
  ERROR_FILE_NOT_FOUND: fromWin32(2),
  ERROR_INVALID_HANDLE: fromWin32(6),
  ERROR_BROKEN_PIPE: fromWin32(109),
  ERROR_INSUFFICIENT_BUFFER: fromWin32(122),
  ERROR_PIPE_NOT_CONNECTED: fromWin32(233),
  ERROR_OPERATION_ABORTED: fromWin32(995),
  ERROR_IO_PENDING: fromWin32(997),
  ERROR_CONNECTION_REFUSED: fromWin32(1225),
  ERROR_ACCESS_DENIED: fromWin32(5),
  /** STATUS_NOT_SUPPORTED: e.g. a command an older driver does not know. */
  ERROR_NOT_SUPPORTED: fromWin32(50),
  ERROR_FLT_NO_WAITER_FOR_REPLY: 0x801f0020,
} as const;

const NAMES = new Map<number, string>(Object.entries(HR).map(([k, v]) => [v >>> 0, k]));

export function hresult(v: number): number {
  return v >>> 0;
}

export function succeeded(v: number): boolean {
  return hresult(v) < 0x80000000;
}

export function describeHr(v: number): string {
  const u = hresult(v);
  return `0x${u.toString(16).padStart(8, "0")}${NAMES.has(u) ? ` (${NAMES.get(u)})` : ""}`;
}

/** HRESULTs after which the port is gone and must be reconnected. */
export function isPortLost(v: number): boolean {
  const u = hresult(v);
  return (
    u === HR.ERROR_INVALID_HANDLE ||
    u === HR.E_HANDLE ||
    u === HR.ERROR_BROKEN_PIPE ||
    u === HR.ERROR_PIPE_NOT_CONNECTED ||
    u === HR.ERROR_FILE_NOT_FOUND ||
    u === HR.ERROR_CONNECTION_REFUSED
  );
}
