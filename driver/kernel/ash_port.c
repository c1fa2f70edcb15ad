/*
 * ash_port.c - the communication port \AgentshPort and the core's send callback.
 *
 * Security: FltBuildDefaultSecurityDescriptor(FLT_PORT_ALL_ACCESS) grants access to the built-in
 * Administrators and SYSTEM only. MaxConnections = 1.
 * Connect: the connection context must be an AGENTSH_CONNECT_CONTEXT with the right magic and
 * version (else STATUS_INVALID_PARAMETER / STATUS_REVISION_MISMATCH); the client's pid is taken
 * from the connecting process. A connect resets the fail state and flushes the cache (core).
 * Send: every FltSendMessage has a timeout; the client port is protected by a rundown reference so
 * a disconnect never closes the port under a send in progress.
 * Message: the user buffer is captured (probe + copy under SEH) before the core validates it.
 */
#include "ash_kernel.h"

static NTSTATUS AgentshPortConnect(_In_ PFLT_PORT ClientPort, _In_opt_ PVOID ServerPortCookie,
    _In_reads_bytes_opt_(SizeOfContext) PVOID ConnectionContext, _In_ ULONG SizeOfContext,
    _Outptr_result_maybenull_ PVOID *ConnectionPortCookie);
static VOID AgentshPortDisconnect(_In_opt_ PVOID ConnectionCookie);
static NTSTATUS AgentshPortMessage(_In_opt_ PVOID PortCookie, _In_reads_bytes_opt_(InputBufferLength) PVOID InputBuffer,
    _In_ ULONG InputBufferLength, _Out_writes_bytes_to_opt_(OutputBufferLength, *ReturnOutputBufferLength) PVOID OutputBuffer,
    _In_ ULONG OutputBufferLength, _Out_ PULONG ReturnOutputBufferLength);

NTSTATUS AgentshPortCreate(void)
{
    AGENTSH_GLOBALS *g = &AgentshGlobals;
    PSECURITY_DESCRIPTOR sd = NULL;
    OBJECT_ATTRIBUTES oa;
    UNICODE_STRING name;
    NTSTATUS status;

    status = FltBuildDefaultSecurityDescriptor(&sd, FLT_PORT_ALL_ACCESS);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    RtlInitUnicodeString(&name, AGENTSH_PORT_NAME);
    InitializeObjectAttributes(&oa, &name, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, sd);
    status = FltCreateCommunicationPort(g->Filter, &g->ServerPort, &oa, NULL, AgentshPortConnect,
                                        AgentshPortDisconnect, AgentshPortMessage, 1);
    FltFreeSecurityDescriptor(sd);
    if (!NT_SUCCESS(status)) {
        g->ServerPort = NULL;
    }
    return status;
}

void AgentshPortClose(void)
{
    if (AgentshGlobals.ServerPort != NULL) {
        FltCloseCommunicationPort(AgentshGlobals.ServerPort);
        AgentshGlobals.ServerPort = NULL;
    }
}

static NTSTATUS AgentshPortConnect(_In_ PFLT_PORT ClientPort, _In_opt_ PVOID ServerPortCookie,
    _In_reads_bytes_opt_(SizeOfContext) PVOID ConnectionContext, _In_ ULONG SizeOfContext,
    _Outptr_result_maybenull_ PVOID *ConnectionPortCookie)
{
    AGENTSH_GLOBALS *g = &AgentshGlobals;
    AGENTSH_CONNECT_CONTEXT context;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(ServerPortCookie);
    PAGED_CODE();
    *ConnectionPortCookie = NULL;
    if (ConnectionContext == NULL || SizeOfContext != sizeof(context)) {
        return STATUS_INVALID_PARAMETER;
    }
    __try {
        RtlCopyMemory(&context, ConnectionContext, sizeof(context));
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        return GetExceptionCode();
    }
    status = AgentshCoreValidateConnectContext(&context, sizeof(context));
    if (!NT_SUCCESS(status)) {
        return status;
    }
    if (InterlockedCompareExchangePointer((PVOID volatile *)&g->ClientPort, ClientPort, NULL) != NULL) {
        return STATUS_CONNECTION_COUNT_LIMIT; /* MaxConnections = 1 already guarantees this */
    }
    AgentshCoreClientConnected(&g->Core, HandleToULong(PsGetCurrentProcessId()));
    return STATUS_SUCCESS;
}

static VOID AgentshPortDisconnect(_In_opt_ PVOID ConnectionCookie)
{
    AGENTSH_GLOBALS *g = &AgentshGlobals;
    UNREFERENCED_PARAMETER(ConnectionCookie);
    PAGED_CODE();
    AgentshCoreClientDisconnected(&g->Core);       /* new decisions stop using the port */
    ExWaitForRundownProtectionRelease(&g->ClientRundown); /* sends in progress finish (bounded) */
    FltCloseClientPort(g->Filter, &g->ClientPort); /* sets ClientPort to NULL */
    ExReInitializeRundownProtection(&g->ClientRundown);
}

NTSTATUS AgentshKernelSend(_In_opt_ void *Context, _In_reads_bytes_(MessageSize) const void *Message,
    _In_ UINT32 MessageSize, _Out_writes_bytes_opt_(*ReplyLength) void *Reply, _Inout_opt_ UINT32 *ReplyLength,
    _In_ UINT32 TimeoutMs)
{
    AGENTSH_GLOBALS *g = &AgentshGlobals;
    LARGE_INTEGER timeout;
    PFLT_PORT port;
    ULONG replyLength = (Reply != NULL && ReplyLength != NULL) ? *ReplyLength : 0;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(Context);
    if (KeGetCurrentIrql() > APC_LEVEL) {
        return STATUS_INVALID_DEVICE_STATE;
    }
    if (!ExAcquireRundownProtection(&g->ClientRundown)) {
        return STATUS_PORT_DISCONNECTED;
    }
    port = g->ClientPort;
    if (port == NULL) {
        ExReleaseRundownProtection(&g->ClientRundown);
        return STATUS_PORT_DISCONNECTED;
    }
    timeout.QuadPart = -(LONGLONG)TimeoutMs * 10000LL; /* relative, 100 ns units: always bounded */
    status = FltSendMessage(g->Filter, &port, (PVOID)Message, MessageSize, Reply,
                            Reply != NULL ? &replyLength : NULL, &timeout);
    ExReleaseRundownProtection(&g->ClientRundown);
    if (Reply != NULL && ReplyLength != NULL) {
        *ReplyLength = (status == STATUS_SUCCESS) ? (UINT32)replyLength : 0;
    }
    return status; /* STATUS_TIMEOUT passes through: the core treats it as a failure */
}

static NTSTATUS AgentshPortMessage(_In_opt_ PVOID PortCookie, _In_reads_bytes_opt_(InputBufferLength) PVOID InputBuffer,
    _In_ ULONG InputBufferLength, _Out_writes_bytes_to_opt_(OutputBufferLength, *ReturnOutputBufferLength) PVOID OutputBuffer,
    _In_ ULONG OutputBufferLength, _Out_ PULONG ReturnOutputBufferLength)
{
    AGENTSH_GLOBALS *g = &AgentshGlobals;
    UINT32 produced = 0;
    void *capture;
    UINT8 *output; /* AGENTSH_PORT_OUTPUT_SIZE: the largest reply */
    NTSTATUS status;
    KPROCESSOR_MODE mode = ExGetPreviousMode();

    UNREFERENCED_PARAMETER(PortCookie);
    PAGED_CODE();
    *ReturnOutputBufferLength = 0;
    if (InputBuffer == NULL || InputBufferLength < sizeof(AGENTSH_MESSAGE_HEADER) ||
        InputBufferLength > AGENTSH_MAX_MESSAGE_SIZE) {
        return STATUS_INVALID_PARAMETER;
    }
    capture = AgentshAlloc(InputBufferLength, AGENTSH_TAG_CAPTURE, AGENTSH_POOL_PAGED);
    if (capture == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    /* Capture once: the core validates and reads a private copy (no double fetch). */
    __try {
        if (mode != KernelMode) {
            ProbeForRead(InputBuffer, InputBufferLength, 1);
        }
        RtlCopyMemory(capture, InputBuffer, InputBufferLength);
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        AgentshFree(capture, AGENTSH_TAG_CAPTURE);
        return GetExceptionCode();
    }
    output = NULL;
    if (OutputBufferLength != 0) {
        output = (UINT8 *)AgentshAlloc(AGENTSH_PORT_OUTPUT_SIZE, AGENTSH_TAG_OUTPUT, AGENTSH_POOL_PAGED);
        if (output == NULL) {
            AgentshFree(capture, AGENTSH_TAG_CAPTURE);
            return STATUS_INSUFFICIENT_RESOURCES;
        }
    }
    status = AgentshCoreDispatch(&g->Core, capture, InputBufferLength, output,
                                 OutputBufferLength < AGENTSH_PORT_OUTPUT_SIZE ? OutputBufferLength
                                                                               : AGENTSH_PORT_OUTPUT_SIZE,
                                 &produced);
    AgentshFree(capture, AGENTSH_TAG_CAPTURE);
    if (NT_SUCCESS(status) && produced != 0) {
        if (OutputBuffer == NULL || OutputBufferLength < produced) {
            status = STATUS_BUFFER_TOO_SMALL;
        } else {
            __try {
                if (mode != KernelMode) {
                    ProbeForWrite(OutputBuffer, produced, 1);
                }
                RtlCopyMemory(OutputBuffer, output, produced);
                *ReturnOutputBufferLength = produced;
            } __except (EXCEPTION_EXECUTE_HANDLER) {
                status = GetExceptionCode();
            }
        }
    }
    if (output != NULL) {
        AgentshFree(output, AGENTSH_TAG_OUTPUT);
    }
    return status;
}

/* ---- notification worker: sends queued process / audit events with a bounded timeout ---- */

static KSTART_ROUTINE AgentshNotifyThreadMain;

static VOID AgentshNotifyThreadMain(_In_ PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    while (AgentshCoreRunNotifications(&AgentshGlobals.Core, AGENTSH_NOTIFY_WAIT_MS)) {
    }
    PsTerminateSystemThread(STATUS_SUCCESS);
}

NTSTATUS AgentshNotifyThreadStart(void)
{
    HANDLE thread;
    OBJECT_ATTRIBUTES oa;
    NTSTATUS status;
    InitializeObjectAttributes(&oa, NULL, OBJ_KERNEL_HANDLE, NULL, NULL);
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, &oa, NULL, NULL, AgentshNotifyThreadMain, NULL);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = ObReferenceObjectByHandle(thread, THREAD_ALL_ACCESS, *PsThreadType, KernelMode,
                                       (PVOID *)&AgentshGlobals.NotifyThread, NULL);
    ZwClose(thread);
    if (!NT_SUCCESS(status)) {
        AgentshCoreStopNotifications(&AgentshGlobals.Core);
        AgentshGlobals.NotifyThread = NULL;
    }
    return status;
}

void AgentshNotifyThreadStop(void)
{
    if (AgentshGlobals.NotifyThread != NULL) {
        AgentshCoreStopNotifications(&AgentshGlobals.Core);
        (void)KeWaitForSingleObject(AgentshGlobals.NotifyThread, Executive, KernelMode, FALSE, NULL);
        ObDereferenceObject(AgentshGlobals.NotifyThread);
        AgentshGlobals.NotifyThread = NULL;
    }
}
