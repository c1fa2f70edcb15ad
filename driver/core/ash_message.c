/*
 * ash_message.c - builds the driver -> user messages (policy requests, process and audit events)
 * in the wire format of protocol.h: the fixed part, then each present string as UTF-16LE with a
 * terminating NUL at an even offset. Empty strings are sent absent (Offset = Length = 0).
 */
#include "agentsh_core.h"

#define AGENTSH_MAX_BUILD_STRINGS 3

/* Fixed: the filled fixed part (Header.Type set by the caller; Size is set here). Field offsets of
 * the AGENTSH_STRING members for Strings[i]. */
static NTSTATUS AgentshBuild(_In_reads_bytes_(FixedSize) const void *Fixed, _In_ UINT32 FixedSize,
    _In_ UINT32 Count, _In_reads_(Count) const AGENTSH_USTR *const *Strings,
    _In_reads_(Count) const UINT32 *FieldOffsets, _Out_ void **Message, _Out_ UINT32 *Size)
{
    UINT64 total = FixedSize;
    UINT32 i, offset;
    UINT8 *m;
    AGENTSH_MESSAGE_HEADER *h;

    *Message = NULL;
    *Size = 0;
    for (i = 0; i < Count; i++) {
        const AGENTSH_USTR *s = Strings[i];
        if (s->Length > AGENTSH_MAX_STRING_CHARS || (s->Length != 0 && s->Buffer == NULL)) {
            return STATUS_INVALID_PARAMETER;
        }
        if (s->Length != 0) {
            total += 2ull * ((UINT64)s->Length + 1ull);
        }
    }
    if (total > AGENTSH_MAX_MESSAGE_SIZE) {
        return STATUS_INVALID_PARAMETER;
    }
    m = (UINT8 *)AgentshAlloc((SIZE_T)total, AGENTSH_TAG_MESSAGE, AGENTSH_POOL_PAGED);
    if (m == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    AgentshMemCopy(m, Fixed, FixedSize);
    offset = FixedSize;
    for (i = 0; i < Count; i++) {
        const AGENTSH_USTR *s = Strings[i];
        AGENTSH_STRING ref;
        ref.Offset = 0;
        ref.Length = 0;
        if (s->Length != 0) {
            ref.Offset = offset;
            ref.Length = s->Length;
            AgentshMemCopy(m + offset, s->Buffer, (SIZE_T)s->Length * sizeof(UINT16));
            m[offset + 2u * s->Length] = 0; /* terminating NUL (buffer is zero-filled anyway) */
            m[offset + 2u * s->Length + 1u] = 0;
            offset += 2u * (s->Length + 1u);
        }
        AgentshMemCopy(m + FieldOffsets[i], &ref, sizeof(ref));
    }
    h = (AGENTSH_MESSAGE_HEADER *)m;
    h->Size = (UINT32)total;
    *Message = m;
    *Size = (UINT32)total;
    return STATUS_SUCCESS;
}

void AgentshFreeMessage(_In_ void *Message)
{
    if (Message != NULL) {
        AgentshFree(Message, AGENTSH_TAG_MESSAGE);
    }
}

/* The three strings of a decision request, in its order (file Path, RenameDest, Volume; registry
 * KeyPath, ValueName, NewName): the policy request and the decision event carry them the same way. */
static void AgentshRequestStrings(_In_ const AGENTSH_DECIDE_REQUEST *Request,
    _Out_writes_(3) const AGENTSH_USTR **Out)
{
    Out[0] = &Request->Strings[0];
    Out[1] = &Request->Strings[1];
    Out[2] = &Request->Strings[2];
}

_Must_inspect_result_ NTSTATUS AgentshBuildPolicyRequest(_In_ const AGENTSH_DECIDE_REQUEST *Request,
    _In_ UINT64 SessionToken, _In_ UINT64 RequestId, _Out_ void **Message, _Out_ UINT32 *Size)
{
    const AGENTSH_USTR *strings[3];
    UINT32 offsets[3];

    AgentshRequestStrings(Request, strings);
    if (Request->Kind == AGENTSH_KIND_FILE) {
        AGENTSH_FILE_REQUEST f;
        AgentshMemZero(&f, sizeof(f));
        f.Header.Type = MSG_POLICY_CHECK_FILE;
        f.Header.RequestId = RequestId;
        f.SessionToken = SessionToken;
        f.ProcessId = Request->ProcessId;
        f.ThreadId = Request->ThreadId;
        f.Operation = Request->Operation;
        f.CreateDisposition = Request->CreateDisposition;
        f.DesiredAccess = Request->DesiredAccess;
        f.Flags = Request->Flags;
        offsets[0] = AGENTSH_OFFSETOF(AGENTSH_FILE_REQUEST, Path);
        offsets[1] = AGENTSH_OFFSETOF(AGENTSH_FILE_REQUEST, RenameDest);
        offsets[2] = AGENTSH_OFFSETOF(AGENTSH_FILE_REQUEST, Volume);
        return AgentshBuild(&f, sizeof(f), 3, strings, offsets, Message, Size);
    }
    if (Request->Kind == AGENTSH_KIND_REGISTRY) {
        AGENTSH_REGISTRY_REQUEST r;
        AgentshMemZero(&r, sizeof(r));
        r.Header.Type = MSG_POLICY_CHECK_REGISTRY;
        r.Header.RequestId = RequestId;
        r.SessionToken = SessionToken;
        r.ProcessId = Request->ProcessId;
        r.ThreadId = Request->ThreadId;
        r.Operation = Request->Operation;
        r.ValueType = Request->ValueType;
        r.DataSize = Request->DataSize;
        offsets[0] = AGENTSH_OFFSETOF(AGENTSH_REGISTRY_REQUEST, KeyPath);
        offsets[1] = AGENTSH_OFFSETOF(AGENTSH_REGISTRY_REQUEST, ValueName);
        offsets[2] = AGENTSH_OFFSETOF(AGENTSH_REGISTRY_REQUEST, NewName);
        return AgentshBuild(&r, sizeof(r), 3, strings, offsets, Message, Size);
    }
    *Message = NULL;
    *Size = 0;
    return STATUS_INVALID_PARAMETER;
}

_Must_inspect_result_ NTSTATUS AgentshBuildProcessEvent(_In_ UINT32 Type, _In_ UINT64 SessionToken,
    _In_ UINT32 ProcessId, _In_ UINT32 CreatorProcessId, _In_ UINT32 ParentProcessId, _In_ INT32 ExitStatus,
    _In_ const AGENTSH_USTR *ImagePath, _Out_ void **Message, _Out_ UINT32 *Size)
{
    AGENTSH_PROCESS_EVENT e;
    const AGENTSH_USTR *strings[1];
    UINT32 offsets[1];
    AGENTSH_USTR none = AGENTSH_USTR_EMPTY;

    AgentshMemZero(&e, sizeof(e));
    e.Header.Type = Type;
    e.SessionToken = SessionToken;
    e.ProcessId = ProcessId;
    e.CreatorProcessId = CreatorProcessId;
    e.ParentProcessId = ParentProcessId;
    e.ExitStatus = Type == MSG_PROCESS_TERMINATED ? ExitStatus : 0;
    strings[0] = (Type == MSG_PROCESS_CREATED && ImagePath != NULL) ? ImagePath : &none;
    offsets[0] = AGENTSH_OFFSETOF(AGENTSH_PROCESS_EVENT, ImagePath);
    return AgentshBuild(&e, sizeof(e), 1, strings, offsets, Message, Size);
}

_Must_inspect_result_ NTSTATUS AgentshBuildAuditEvent(_In_ UINT64 SessionToken, _In_ UINT32 ProcessId,
    _In_ UINT32 Kind, _In_ UINT32 Operation, _In_ INT32 Status, _In_ const AGENTSH_USTR *Path,
    _In_ const AGENTSH_USTR *ValueName, _Out_ void **Message, _Out_ UINT32 *Size)
{
    AGENTSH_AUDIT_EVENT a;
    const AGENTSH_USTR *strings[2];
    UINT32 offsets[2];

    AgentshMemZero(&a, sizeof(a));
    a.Header.Type = MSG_AUDIT_EVENT;
    a.SessionToken = SessionToken;
    a.ProcessId = ProcessId;
    a.Kind = Kind;
    a.Operation = Operation;
    a.Status = Status;
    strings[0] = Path;
    strings[1] = ValueName;
    offsets[0] = AGENTSH_OFFSETOF(AGENTSH_AUDIT_EVENT, Path);
    offsets[1] = AGENTSH_OFFSETOF(AGENTSH_AUDIT_EVENT, ValueName);
    return AgentshBuild(&a, sizeof(a), 2, strings, offsets, Message, Size);
}

_Must_inspect_result_ NTSTATUS AgentshBuildDecisionEvent(_In_ const AGENTSH_DECIDE_REQUEST *Request,
    _In_ UINT64 SessionToken, _In_ UINT32 Decision, _In_ UINT32 Source, _In_ UINT32 Reason,
    _In_ NTSTATUS QueryStatus, _In_ UINT32 Suppressed, _Out_ void **Message, _Out_ UINT32 *Size)
{
    AGENTSH_DECISION_EVENT e;
    const AGENTSH_USTR *strings[3];
    UINT32 offsets[3];

    AgentshMemZero(&e, sizeof(e));
    e.Header.Type = MSG_DECISION_EVENT;
    e.SessionToken = SessionToken;
    e.ProcessId = Request->ProcessId;
    e.ThreadId = Request->ThreadId;
    e.Kind = Request->Kind;
    e.Operation = Request->Operation;
    e.Decision = Decision;
    e.Source = Source;
    e.Reason = Reason;
    e.QueryStatus = QueryStatus;
    e.Suppressed = Suppressed;
    AgentshRequestStrings(Request, strings);
    offsets[0] = AGENTSH_OFFSETOF(AGENTSH_DECISION_EVENT, Path);
    offsets[1] = AGENTSH_OFFSETOF(AGENTSH_DECISION_EVENT, String1);
    offsets[2] = AGENTSH_OFFSETOF(AGENTSH_DECISION_EVENT, String2);
    return AgentshBuild(&e, sizeof(e), 3, strings, offsets, Message, Size);
}
