/*
 * sim_wire.h - the private framing between libfltsim.so (the fltlib.dll twin) and agentsh-sim over a
 * Unix stream socket. Not a public contract: only fltsim.c and sim_port.c speak it.
 *
 * Every request: SIMW_HEADER {Op, Length, Arg} + Length bytes. Every response: SIMW_HEADER with
 * Op = HRESULT of the operation, Length = payload bytes, Arg = op-specific.
 *
 * One FilterConnectCommunicationPort = one "main" connection (CONNECT; its lifetime is the client's
 * connection: EOF = port disconnected). Each blocking call (FilterGetMessage, FilterReplyMessage,
 * FilterSendMessage) runs on an "aux" connection taken from a per-handle pool and bound to the main
 * one by the cookie (ATTACH), so any number of threads can block in FilterGetMessage at once.
 */
#ifndef AGENTSH_SIM_WIRE_H
#define AGENTSH_SIM_WIRE_H
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct SIMW_HEADER {
    uint32_t Op;      /* request: SIMW_OP_*; response: HRESULT */
    uint32_t Length;  /* payload bytes that follow */
    uint64_t Arg;
} SIMW_HEADER;

#define SIMW_OP_CONNECT  1u  /* payload: connection context; resp Arg = cookie */
#define SIMW_OP_ATTACH   2u  /* Arg = cookie */
#define SIMW_OP_GET      3u  /* Arg = buffer capacity; resp payload = FILTER_MESSAGE_HEADER + message */
#define SIMW_OP_REPLY    4u  /* payload = FILTER_REPLY_HEADER + reply */
#define SIMW_OP_SEND     5u  /* Arg = output capacity; payload = input; resp payload = output */
#define SIMW_OP_VOLUMES  6u  /* resp payload = UTF-8 "C:=\Device\HarddiskVolume3\n..." */
#define SIMW_OP_GET_MANY 7u  /* Arg = count << 32 | capacity of each buffer; resp Arg = messages,
                                payload = per message: uint32 length, FILTER_MESSAGE_HEADER + message */

#define SIMW_GET_MANY_MAX 64u

#define SIMW_MAX_PAYLOAD (16u + 256u * 1024u + 64u)

/* HRESULTs (same values as winerror.h / fltwinerror.h) */
#define SIM_S_OK                         ((int32_t)0x00000000)
#define SIM_E_INVALIDARG                 ((int32_t)0x80070057) /* HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER) */
#define SIM_E_HANDLE                     ((int32_t)0x80070006) /* HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE) */
#define SIM_E_FILE_NOT_FOUND             ((int32_t)0x80070002) /* HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND) */
#define SIM_E_INSUFFICIENT_BUFFER        ((int32_t)0x8007007A) /* HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER) */
#define SIM_E_OPERATION_ABORTED          ((int32_t)0x800703E3) /* HRESULT_FROM_WIN32(ERROR_OPERATION_ABORTED) */
#define SIM_E_CONNECTION_COUNT_LIMIT     ((int32_t)0x800704D6) /* HRESULT_FROM_WIN32(ERROR_CONNECTION_COUNT_LIMIT) */
#define SIM_E_REVISION_MISMATCH          ((int32_t)0x8007051A) /* HRESULT_FROM_WIN32(ERROR_REVISION_MISMATCH) */
#define SIM_E_NOT_FOUND                  ((int32_t)0x80070490) /* HRESULT_FROM_WIN32(ERROR_NOT_FOUND) */
#define SIM_E_ALREADY_EXISTS             ((int32_t)0x800700B7) /* HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS) */
#define SIM_E_NO_SYSTEM_RESOURCES        ((int32_t)0x800705AA) /* HRESULT_FROM_WIN32(ERROR_NO_SYSTEM_RESOURCES) */
#define SIM_E_NOT_SUPPORTED              ((int32_t)0x80070032) /* HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED) */
#define SIM_E_OUTOFMEMORY                ((int32_t)0x8007000E)
#define SIM_E_FLT_NO_WAITER_FOR_REPLY    ((int32_t)0x801F0020) /* ERROR_FLT_NO_WAITER_FOR_REPLY */

/* NTSTATUS -> HRESULT as fltlib reports a failed FilterSendMessage / connect:
 * HRESULT_FROM_WIN32(RtlNtStatusToDosError(status)) for the statuses the core returns. */
static inline int32_t SimHresultFromNtStatus(int32_t status)
{
    switch ((uint32_t)status) {
    case 0x00000000u: return SIM_S_OK;
    case 0xC000000Du: return SIM_E_INVALIDARG;             /* STATUS_INVALID_PARAMETER */
    case 0xC0000023u: return SIM_E_INSUFFICIENT_BUFFER;    /* STATUS_BUFFER_TOO_SMALL */
    case 0xC0000225u: return SIM_E_NOT_FOUND;              /* STATUS_NOT_FOUND */
    case 0xC0000035u: return SIM_E_ALREADY_EXISTS;         /* STATUS_OBJECT_NAME_COLLISION */
    case 0xC000009Au: return SIM_E_NO_SYSTEM_RESOURCES;    /* STATUS_INSUFFICIENT_RESOURCES */
    case 0xC00000BBu: return SIM_E_NOT_SUPPORTED;          /* STATUS_NOT_SUPPORTED */
    case 0xC0000059u: return SIM_E_REVISION_MISMATCH;      /* STATUS_REVISION_MISMATCH */
    case 0xC0000246u: return SIM_E_CONNECTION_COUNT_LIMIT; /* STATUS_CONNECTION_COUNT_LIMIT */
    case 0xC0000037u: return SIM_E_HANDLE;                 /* STATUS_PORT_DISCONNECTED */
    default:
        return (status & 0x80000000) ? (int32_t)((uint32_t)status | 0x10000000u) /* HRESULT_FROM_NT */
                                     : SIM_S_OK;
    }
}

/* Default socket path for a port name: /tmp/agentsh-sim-<name>.sock (name without leading '\',
 * other characters outside [A-Za-z0-9._-] replaced by '_'). AGENTSH_SIM_SOCKET overrides it. */
static inline void SimDefaultSocketPath(const char *PortNameUtf8, char *Out, unsigned Cap)
{
    const char *p = PortNameUtf8;
    unsigned n;
    while (*p == '\\' || *p == '/') p++;
    n = (unsigned)snprintf(Out, Cap, "/tmp/agentsh-sim-");
    for (; *p && n + 6 < Cap; p++) {
        char c = *p;
        Out[n++] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == '_') ? c : '_';
    }
    snprintf(Out + n, Cap - n, ".sock");
}
/* Whole-buffer socket I/O shared by the simulator and libfltsim (EINTR retried; -1 on EOF/error). */
static inline int WriteAll(int fd, const void *buf, size_t n)
{
    const uint8_t *p = (const uint8_t *)buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static inline int ReadAll(int fd, void *buf, size_t n)
{
    uint8_t *p = (uint8_t *)buf;
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

#endif
