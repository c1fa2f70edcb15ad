/*
 * ash_validate.c - the Size and String rules of protocol.h, for every message type in both
 * directions, and for policy replies. Used by the kernel (user -> driver messages after capture,
 * replies), by the simulator (same), and by the tests (driver -> user messages the core builds).
 *
 * Every read goes through AgentshRead32/64 after a bounds check, with 64-bit arithmetic for
 * Offset + 2 * (Length + 1), so no input can make the validator read outside Buffer[0..Length).
 */
#include "agentsh_core.h"

AGENTSH_INLINE UINT32 AgentshRead32(_In_ const UINT8 *P)
{
    UINT32 v;
    AgentshMemCopy(&v, P, sizeof(v));
    return v;
}

AGENTSH_INLINE UINT16 AgentshRead16(_In_ const UINT8 *P)
{
    UINT16 v;
    AgentshMemCopy(&v, P, sizeof(v));
    return v;
}

BOOLEAN AgentshValidateString(_In_reads_bytes_(Size) const UINT8 *Message, _In_ UINT32 Size,
    _In_ UINT32 FixedSize, _In_ const AGENTSH_STRING *String)
{
    UINT64 end;
    UINT32 i;
    const UINT8 *text;

    if (String->Offset == 0 && String->Length == 0) {
        return TRUE; /* absent */
    }
    if (String->Length > AGENTSH_MAX_STRING_CHARS || (String->Offset & 1u) != 0 || String->Offset < FixedSize) {
        return FALSE;
    }
    end = (UINT64)String->Offset + 2ull * ((UINT64)String->Length + 1ull);
    if (end > (UINT64)Size) {
        return FALSE;
    }
    text = Message + String->Offset;
    if (AgentshRead16(text + 2u * String->Length) != 0) {
        return FALSE; /* the unit at index Length must be NUL */
    }
    for (i = 0; i < String->Length; i++) {
        UINT16 c = AgentshRead16(text + 2u * i);
        if (c >= 0xD800 && c <= 0xDBFF) {
            UINT16 d;
            if (i + 1 >= String->Length) {
                return FALSE; /* high surrogate at the end */
            }
            d = AgentshRead16(text + 2u * (i + 1));
            if (d < 0xDC00 || d > 0xDFFF) {
                return FALSE;
            }
            i++;
        } else if (c >= 0xDC00 && c <= 0xDFFF) {
            return FALSE; /* unpaired low surrogate */
        }
    }
    return TRUE;
}

static BOOLEAN AgentshStringAt(_In_reads_bytes_(Size) const UINT8 *M, _In_ UINT32 Size, _In_ UINT32 Fixed,
    _In_ UINT32 FieldOffset, _Out_opt_ AGENTSH_STRING *Out)
{
    AGENTSH_STRING s;
    s.Offset = AgentshRead32(M + FieldOffset);
    s.Length = AgentshRead32(M + FieldOffset + 4);
    if (Out != NULL) {
        *Out = s;
    }
    return AgentshValidateString(M, Size, Fixed, &s);
}

/* The Count entries of a DECISION_COUNTS_REPLY (inside the message): known values, never a zero
 * count, one per slot in slot order. */
static BOOLEAN AgentshValidDecisionCounts(_In_ const UINT8 *M, _In_ UINT32 Count)
{
    AGENTSH_DECISION_COUNT e;
    UINT32 i, slot, last = 0;
    for (i = 0; i < Count; i++) {
        AgentshMemCopy(&e, M + sizeof(AGENTSH_DECISION_COUNTS) + (SIZE_T)i * sizeof(e), sizeof(e));
        if (e.Source < DECISION_SOURCE_CACHE || e.Source > DECISION_SOURCE_FAIL_MODE || e.Kind > AGENTSH_KIND_REGISTRY ||
            e.Operation >= 8u || e.Decision > DECISION_DENY || e.Count == 0) {
            return FALSE;
        }
        slot = AGENTSH_DECISION_SLOT(e.Source, e.Kind, e.Operation, e.Decision);
        if (i > 0 && slot <= last) {
            return FALSE;
        }
        last = slot;
    }
    return TRUE;
}

NTSTATUS AgentshValidateMessage(_In_reads_bytes_(BufferLength) const void *Buffer, _In_ UINT32 BufferLength,
    _Out_opt_ UINT32 *Type)
{
    const UINT8 *m = (const UINT8 *)Buffer;
    AGENTSH_STRING s;
    UINT32 type, size, op, count;

    if (Type != NULL) {
        *Type = 0;
    }
    if (Buffer == NULL || BufferLength < sizeof(AGENTSH_MESSAGE_HEADER)) {
        return STATUS_INVALID_PARAMETER;
    }
    type = AgentshRead32(m + AGENTSH_OFFSETOF(AGENTSH_MESSAGE_HEADER, Type));
    size = AgentshRead32(m + AGENTSH_OFFSETOF(AGENTSH_MESSAGE_HEADER, Size));
    if (size < sizeof(AGENTSH_MESSAGE_HEADER) || size > AGENTSH_MAX_MESSAGE_SIZE || size > BufferLength) {
        return STATUS_INVALID_PARAMETER;
    }

#define AGENTSH_FIXED(T) do { if (size != sizeof(T)) return STATUS_INVALID_PARAMETER; } while (0)
#define AGENTSH_MIN(T)   do { if (size < sizeof(T)) return STATUS_INVALID_PARAMETER; } while (0)
#define AGENTSH_STR(T, f, out) \
    do { if (!AgentshStringAt(m, size, (UINT32)sizeof(T), AGENTSH_OFFSETOF(T, f), (out))) \
             return STATUS_INVALID_PARAMETER; } while (0)

    switch (type) {
    case MSG_POLICY_CHECK_FILE:
        AGENTSH_MIN(AGENTSH_FILE_REQUEST);
        AGENTSH_STR(AGENTSH_FILE_REQUEST, Path, &s);
        if (s.Length == 0) {
            return STATUS_INVALID_PARAMETER;
        }
        AGENTSH_STR(AGENTSH_FILE_REQUEST, RenameDest, NULL);
        AGENTSH_STR(AGENTSH_FILE_REQUEST, Volume, NULL);
        op = AgentshRead32(m + AGENTSH_OFFSETOF(AGENTSH_FILE_REQUEST, Operation));
        if (op < FILE_OP_CREATE || op > FILE_OP_LINK) {
            return STATUS_INVALID_PARAMETER;
        }
        break;
    case MSG_POLICY_CHECK_REGISTRY:
        AGENTSH_MIN(AGENTSH_REGISTRY_REQUEST);
        AGENTSH_STR(AGENTSH_REGISTRY_REQUEST, KeyPath, &s);
        if (s.Length == 0) {
            return STATUS_INVALID_PARAMETER;
        }
        AGENTSH_STR(AGENTSH_REGISTRY_REQUEST, ValueName, NULL);
        AGENTSH_STR(AGENTSH_REGISTRY_REQUEST, NewName, NULL);
        op = AgentshRead32(m + AGENTSH_OFFSETOF(AGENTSH_REGISTRY_REQUEST, Operation));
        if (op < REG_OP_CREATE_KEY || op > REG_OP_QUERY_VALUE) {
            return STATUS_INVALID_PARAMETER;
        }
        break;
    case MSG_PROCESS_CREATED:
    case MSG_PROCESS_TERMINATED:
        AGENTSH_MIN(AGENTSH_PROCESS_EVENT);
        AGENTSH_STR(AGENTSH_PROCESS_EVENT, ImagePath, NULL);
        break;
    case MSG_AUDIT_EVENT:
        AGENTSH_MIN(AGENTSH_AUDIT_EVENT);
        AGENTSH_STR(AGENTSH_AUDIT_EVENT, Path, NULL);
        AGENTSH_STR(AGENTSH_AUDIT_EVENT, ValueName, NULL);
        break;
    case MSG_DECISION_EVENT:
        AGENTSH_MIN(AGENTSH_DECISION_EVENT);
        AGENTSH_STR(AGENTSH_DECISION_EVENT, Path, NULL);
        AGENTSH_STR(AGENTSH_DECISION_EVENT, String1, NULL);
        AGENTSH_STR(AGENTSH_DECISION_EVENT, String2, NULL);
        break;
    case MSG_REGISTER_SESSION:
        AGENTSH_MIN(AGENTSH_SESSION_REGISTER);
        AGENTSH_STR(AGENTSH_SESSION_REGISTER, WorkspacePath, NULL);
        break;
    case MSG_UNREGISTER_SESSION:
        AGENTSH_FIXED(AGENTSH_SESSION_UNREGISTER);
        break;
    case MSG_UPDATE_CACHE:
        AGENTSH_MIN(AGENTSH_CACHE_UPDATE);
        AGENTSH_STR(AGENTSH_CACHE_UPDATE, PathPrefix, NULL);
        break;
    case MSG_SHUTDOWN:
    case MSG_GET_METRICS:
    case MSG_GET_DECISION_COUNTS:
        if (size != sizeof(AGENTSH_MESSAGE_HEADER)) {
            return STATUS_INVALID_PARAMETER;
        }
        break;
    case MSG_SET_CONFIG:
        AGENTSH_FIXED(AGENTSH_CONFIG);
        break;
    case MSG_METRICS_REPLY:
        AGENTSH_FIXED(AGENTSH_METRICS);
        break;
    case MSG_EXCLUDE_PROCESS:
        AGENTSH_MIN(AGENTSH_EXCLUDE_PROCESS);
        count = AgentshRead32(m + AGENTSH_OFFSETOF(AGENTSH_EXCLUDE_PROCESS, Count));
        if (count > AGENTSH_MAX_EXCLUDED_PIDS || size != sizeof(AGENTSH_EXCLUDE_PROCESS) + 4u * count) {
            return STATUS_INVALID_PARAMETER;
        }
        break;
    case MSG_DECISION_COUNTS_REPLY:
        AGENTSH_MIN(AGENTSH_DECISION_COUNTS);
        count = AgentshRead32(m + AGENTSH_OFFSETOF(AGENTSH_DECISION_COUNTS, Count));
        if (count > AGENTSH_DECISION_COUNT_SLOTS ||
            size != sizeof(AGENTSH_DECISION_COUNTS) + (UINT32)sizeof(AGENTSH_DECISION_COUNT) * count ||
            !AgentshValidDecisionCounts(m, count)) {
            return STATUS_INVALID_PARAMETER;
        }
        break;
    case MSG_PING:
        AGENTSH_FIXED(AGENTSH_PING);
        break;
    case MSG_PONG:
        AGENTSH_FIXED(AGENTSH_PONG);
        break;
    case MSG_POLICY_RESPONSE:
        AGENTSH_FIXED(AGENTSH_POLICY_RESPONSE);
        break;
    default:
        return STATUS_NOT_SUPPORTED;
    }
#undef AGENTSH_FIXED
#undef AGENTSH_MIN
#undef AGENTSH_STR
    if (Type != NULL) {
        *Type = type;
    }
    return STATUS_SUCCESS;
}

NTSTATUS AgentshValidateReply(_In_reads_bytes_(ReplyLength) const void *Reply, _In_ UINT32 ReplyLength,
    _In_ UINT64 RequestId, _Out_ UINT32 *Decision, _Out_ UINT32 *CacheTTLMs)
{
    AGENTSH_POLICY_RESPONSE r;
    *Decision = DECISION_DENY;
    *CacheTTLMs = AGENTSH_TTL_NO_CACHE;
    if (Reply == NULL || ReplyLength != sizeof(AGENTSH_POLICY_RESPONSE)) {
        return STATUS_INVALID_PARAMETER; /* short (or long) reply */
    }
    AgentshMemCopy(&r, Reply, sizeof(r));
    if (r.Header.Type != MSG_POLICY_RESPONSE || r.Header.Size != sizeof(AGENTSH_POLICY_RESPONSE) ||
        r.Header.RequestId != RequestId || r.Decision > DECISION_PENDING || r.Flags != 0 || r.Reserved != 0) {
        return STATUS_INVALID_PARAMETER;
    }
    *Decision = r.Decision;
    *CacheTTLMs = r.CacheTTLMs;
    return STATUS_SUCCESS;
}

AGENTSH_USTR AgentshMessageString(_In_ const void *Message, _In_ const AGENTSH_STRING *String)
{
    AGENTSH_USTR u;
    u.Length = String->Length;
    u.Buffer = String->Length != 0 ? (const UINT16 *)((const UINT8 *)Message + String->Offset) : NULL;
    return u;
}
