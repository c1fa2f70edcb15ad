/*
 * ash_registry.c - registry callback (CmRegisterCallbackEx, altitude 385200).
 *
 * Pre-operation: create/open key (RegNtPreCreateKeyEx / RegNtPreOpenKeyEx), set value, delete key,
 * delete value, rename key, query value are decided by the core; a DENY returns
 * STATUS_ACCESS_DENIED, which fails the operation. Key names come from CmCallbackGetKeyObjectIDEx
 * (full \REGISTRY\... path); a relative CompleteName (create/open with a RootObject) is appended to
 * the root key's full name. Post-operation: a MSG_AUDIT_EVENT with the operation's final status.
 * Kernel-mode callers (previous mode KernelMode) are not filtered.
 */
#include "ash_kernel.h"

/* Full name of a key object; release with AgentshReleaseKeyName. */
static NTSTATUS AgentshKeyName(_In_ PVOID Object, _Out_ PCUNICODE_STRING *Name)
{
    *Name = NULL;
    if (Object == NULL) {
        return STATUS_INVALID_PARAMETER;
    }
    return CmCallbackGetKeyObjectIDEx(&AgentshGlobals.RegistryCookie, Object, NULL, Name, 0);
}

static void AgentshReleaseKeyName(_In_opt_ PCUNICODE_STRING Name)
{
    if (Name != NULL) {
        CmCallbackReleaseKeyObjectIDEx(Name);
    }
}

/* Resolves CompleteName against RootObject. *Buffer (pool) is set when a joined name was built. */
static NTSTATUS AgentshCreateKeyPath(_In_ PUNICODE_STRING CompleteName, _In_opt_ PVOID RootObject,
    _Out_ AGENTSH_USTR *Path, _Out_ UINT16 **Buffer)
{
    PCUNICODE_STRING root = NULL;
    UINT32 rootChars, nameChars, total;
    NTSTATUS status;

    *Buffer = NULL;
    Path->Buffer = NULL;
    Path->Length = 0;
    if (CompleteName == NULL || CompleteName->Buffer == NULL) {
        return STATUS_INVALID_PARAMETER;
    }
    nameChars = CompleteName->Length / sizeof(WCHAR);
    if (nameChars != 0 && CompleteName->Buffer[0] == L'\\') {
        *Path = AgentshUstrFromUnicode(CompleteName); /* absolute */
        return STATUS_SUCCESS;
    }
    status = AgentshKeyName(RootObject, &root);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    rootChars = root->Length / sizeof(WCHAR);
    total = rootChars + 1 + nameChars; /* each <= 32767: no overflow */
    if (total > AGENTSH_MAX_STRING_CHARS) {
        AgentshReleaseKeyName(root);
        return STATUS_NAME_TOO_LONG;
    }
    *Buffer = (UINT16 *)AgentshAlloc((SIZE_T)total * sizeof(UINT16), AGENTSH_TAG_NAME, AGENTSH_POOL_PAGED);
    if (*Buffer == NULL) {
        AgentshReleaseKeyName(root);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    RtlCopyMemory(*Buffer, root->Buffer, (SIZE_T)rootChars * sizeof(UINT16));
    (*Buffer)[rootChars] = L'\\';
    RtlCopyMemory(*Buffer + rootChars + 1, CompleteName->Buffer, (SIZE_T)nameChars * sizeof(UINT16));
    AgentshReleaseKeyName(root);
    Path->Buffer = *Buffer;
    Path->Length = total;
    return STATUS_SUCCESS;
}

static NTSTATUS AgentshDecideRegistry(_In_ UINT32 Pid, _In_ UINT32 Operation, _In_ const AGENTSH_USTR *Key,
    _In_opt_ PCUNICODE_STRING ValueName, _In_opt_ PCUNICODE_STRING NewName, _In_ UINT32 ValueType, _In_ UINT32 DataSize)
{
    AGENTSH_DECIDE_REQUEST request;
    AGENTSH_VERDICT verdict;
    RtlZeroMemory(&request, sizeof(request));
    request.Kind = AGENTSH_KIND_REGISTRY;
    request.ProcessId = Pid;
    request.ThreadId = HandleToULong(PsGetCurrentThreadId());
    request.Operation = Operation;
    request.ValueType = ValueType;
    request.DataSize = DataSize;
    request.Strings[0] = *Key;
    request.Strings[1] = AgentshUstrFromUnicode(ValueName);
    request.Strings[2] = AgentshUstrFromUnicode(NewName);
    AgentshCoreDecide(&AgentshGlobals.Core, &request, &verdict);
    return verdict.Decision == DECISION_DENY ? STATUS_ACCESS_DENIED : STATUS_SUCCESS;
}

/* Decide an operation on an existing key object. */
static NTSTATUS AgentshDecideOnObject(_In_ UINT32 Pid, _In_ UINT32 Operation, _In_ PVOID Object,
    _In_opt_ PCUNICODE_STRING ValueName, _In_opt_ PCUNICODE_STRING NewName, _In_ UINT32 ValueType, _In_ UINT32 DataSize)
{
    PCUNICODE_STRING name = NULL;
    AGENTSH_USTR key = AGENTSH_USTR_EMPTY;
    NTSTATUS status;
    if (NT_SUCCESS(AgentshKeyName(Object, &name))) {
        key = AgentshUstrFromUnicode(name);
    }
    /* without a name the request is invalid for the core: it answers by the fail mode */
    status = AgentshDecideRegistry(Pid, Operation, &key, ValueName, NewName, ValueType, DataSize);
    AgentshReleaseKeyName(name);
    return status;
}

static void AgentshAuditPost(_In_ UINT32 Pid, _In_ UINT32 Operation, _In_ PREG_POST_OPERATION_INFORMATION Post,
    _In_opt_ PCUNICODE_STRING ValueName)
{
    PCUNICODE_STRING name = NULL;
    AGENTSH_USTR key, value;
    if (!AgentshCoreAuditResultsWanted(&AgentshGlobals.Core)) {
        return; /* outcomes are reported only on request: no name lookup */
    }
    /* For create/open Post->Object is the new key on success; for the others, the key operated on. */
    if (Post->Object == NULL || !NT_SUCCESS(AgentshKeyName(Post->Object, &name))) {
        return;
    }
    key = AgentshUstrFromUnicode(name);
    value = AgentshUstrFromUnicode(ValueName);
    (void)AgentshCoreAudit(&AgentshGlobals.Core, Pid, AGENTSH_KIND_REGISTRY, Operation, Post->Status, &key, &value);
    AgentshReleaseKeyName(name);
}

NTSTATUS AgentshRegistryCallback(_In_ PVOID CallbackContext, _In_opt_ PVOID Argument1, _In_opt_ PVOID Argument2)
{
    REG_NOTIFY_CLASS cls = (REG_NOTIFY_CLASS)(ULONG_PTR)Argument1;
    UINT32 pid = HandleToULong(PsGetCurrentProcessId());
    NTSTATUS status = STATUS_SUCCESS;

    UNREFERENCED_PARAMETER(CallbackContext);
    if (Argument2 == NULL || ExGetPreviousMode() == KernelMode || KeGetCurrentIrql() != PASSIVE_LEVEL) {
        return STATUS_SUCCESS;
    }
    if (!AgentshCoreShouldCheck(&AgentshGlobals.Core, pid, NULL)) {
        return STATUS_SUCCESS;
    }
    switch (cls) {
    case RegNtPreCreateKeyEx:
    case RegNtPreOpenKeyEx: {
        PREG_CREATE_KEY_INFORMATION info = (PREG_CREATE_KEY_INFORMATION)Argument2;
        AGENTSH_USTR path;
        UINT16 *buffer = NULL;
        if (NT_SUCCESS(AgentshCreateKeyPath(info->CompleteName, info->RootObject, &path, &buffer))) {
            status = AgentshDecideRegistry(pid, cls == RegNtPreCreateKeyEx ? REG_OP_CREATE_KEY : REG_OP_OPEN_KEY,
                                           &path, NULL, NULL, 0, 0);
        } else {
            AGENTSH_USTR none = AGENTSH_USTR_EMPTY;
            status = AgentshDecideRegistry(pid, cls == RegNtPreCreateKeyEx ? REG_OP_CREATE_KEY : REG_OP_OPEN_KEY,
                                           &none, NULL, NULL, 0, 0);
        }
        if (buffer != NULL) {
            AgentshFree(buffer, AGENTSH_TAG_NAME);
        }
        break;
    }
    case RegNtPreSetValueKey: {
        PREG_SET_VALUE_KEY_INFORMATION info = (PREG_SET_VALUE_KEY_INFORMATION)Argument2;
        status = AgentshDecideOnObject(pid, REG_OP_SET_VALUE, info->Object, info->ValueName, NULL, info->Type,
                                       info->DataSize);
        break;
    }
    case RegNtPreDeleteKey: {
        PREG_DELETE_KEY_INFORMATION info = (PREG_DELETE_KEY_INFORMATION)Argument2;
        status = AgentshDecideOnObject(pid, REG_OP_DELETE_KEY, info->Object, NULL, NULL, 0, 0);
        break;
    }
    case RegNtPreDeleteValueKey: {
        PREG_DELETE_VALUE_KEY_INFORMATION info = (PREG_DELETE_VALUE_KEY_INFORMATION)Argument2;
        status = AgentshDecideOnObject(pid, REG_OP_DELETE_VALUE, info->Object, info->ValueName, NULL, 0, 0);
        break;
    }
    case RegNtPreRenameKey: {
        PREG_RENAME_KEY_INFORMATION info = (PREG_RENAME_KEY_INFORMATION)Argument2;
        status = AgentshDecideOnObject(pid, REG_OP_RENAME_KEY, info->Object, NULL, info->NewName, 0, 0);
        break;
    }
    case RegNtPreQueryValueKey: {
        PREG_QUERY_VALUE_KEY_INFORMATION info = (PREG_QUERY_VALUE_KEY_INFORMATION)Argument2;
        status = AgentshDecideOnObject(pid, REG_OP_QUERY_VALUE, info->Object, info->ValueName, NULL, 0, 0);
        break;
    }
    /* post-operation audit records; PreInformation carries the value name of value operations */
    case RegNtPostCreateKeyEx:
        AgentshAuditPost(pid, REG_OP_CREATE_KEY, (PREG_POST_OPERATION_INFORMATION)Argument2, NULL);
        break;
    case RegNtPostOpenKeyEx:
        AgentshAuditPost(pid, REG_OP_OPEN_KEY, (PREG_POST_OPERATION_INFORMATION)Argument2, NULL);
        break;
    case RegNtPostDeleteKey:
        AgentshAuditPost(pid, REG_OP_DELETE_KEY, (PREG_POST_OPERATION_INFORMATION)Argument2, NULL);
        break;
    case RegNtPostRenameKey:
        AgentshAuditPost(pid, REG_OP_RENAME_KEY, (PREG_POST_OPERATION_INFORMATION)Argument2, NULL);
        break;
    case RegNtPostSetValueKey: {
        PREG_POST_OPERATION_INFORMATION post = (PREG_POST_OPERATION_INFORMATION)Argument2;
        PREG_SET_VALUE_KEY_INFORMATION pre = (PREG_SET_VALUE_KEY_INFORMATION)post->PreInformation;
        AgentshAuditPost(pid, REG_OP_SET_VALUE, post, pre != NULL ? pre->ValueName : NULL);
        break;
    }
    case RegNtPostDeleteValueKey: {
        PREG_POST_OPERATION_INFORMATION post = (PREG_POST_OPERATION_INFORMATION)Argument2;
        PREG_DELETE_VALUE_KEY_INFORMATION pre = (PREG_DELETE_VALUE_KEY_INFORMATION)post->PreInformation;
        AgentshAuditPost(pid, REG_OP_DELETE_VALUE, post, pre != NULL ? pre->ValueName : NULL);
        break;
    }
    case RegNtPostQueryValueKey: {
        PREG_POST_OPERATION_INFORMATION post = (PREG_POST_OPERATION_INFORMATION)Argument2;
        PREG_QUERY_VALUE_KEY_INFORMATION pre = (PREG_QUERY_VALUE_KEY_INFORMATION)post->PreInformation;
        AgentshAuditPost(pid, REG_OP_QUERY_VALUE, post, pre != NULL ? pre->ValueName : NULL);
        break;
    }
    default:
        break;
    }
    return status;
}
