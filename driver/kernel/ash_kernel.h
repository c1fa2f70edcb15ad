/*
 * ash_kernel.h - shared state and prototypes of the kernel glue (agentsh.sys).
 *
 *   ash_driver.c    DriverEntry, unload, filter registration, instance setup
 *   ash_port.c      communication port (connect / disconnect / message), the core's send callback,
 *                   the notification worker thread
 *   ash_process.c   PsSetCreateProcessNotifyRoutineEx
 *   ash_file.c      pre-create, pre-write, pre-set-information
 *   ash_registry.c  CmRegisterCallbackEx (pre: decide; post: audit)
 *
 * All policy state lives in the portable core (AgentshGlobals.Core); this layer extracts names and
 * parameters from Windows structures and enforces the verdict.
 */
#ifndef AGENTSH_KERNEL_H
#define AGENTSH_KERNEL_H

#include <fltKernel.h>
#include "protocol.h"
#include "agentsh_shim.h"
#include "agentsh_core.h"

#define AGENTSH_FILTER_ALTITUDE   L"385200"   /* FSFilter Activity Monitor; registry callbacks too */

typedef struct _AGENTSH_GLOBALS {
    PDRIVER_OBJECT DriverObject;
    PFLT_FILTER Filter;
    PFLT_PORT ServerPort;
    PFLT_PORT ClientPort;            /* one connection at most (MaxConnections = 1) */
    EX_RUNDOWN_REF ClientRundown;    /* sends in progress on ClientPort; disconnect waits for them */
    AGENTSH_CORE Core;
    LARGE_INTEGER RegistryCookie;
    BOOLEAN CoreInitialized;
    BOOLEAN ProcessNotifyRegistered;
    BOOLEAN RegistryRegistered;
    PKTHREAD NotifyThread;
} AGENTSH_GLOBALS;

extern AGENTSH_GLOBALS AgentshGlobals;

/* ash_port.c */
NTSTATUS AgentshPortCreate(void);
void AgentshPortClose(void);
NTSTATUS AgentshKernelSend(_In_opt_ void *Context, _In_reads_bytes_(MessageSize) const void *Message,
    _In_ UINT32 MessageSize, _Out_writes_bytes_opt_(*ReplyLength) void *Reply, _Inout_opt_ UINT32 *ReplyLength,
    _In_ UINT32 TimeoutMs);
NTSTATUS AgentshNotifyThreadStart(void);
void AgentshNotifyThreadStop(void);

/* ash_process.c */
VOID AgentshProcessNotify(_Inout_ PEPROCESS Process, _In_ HANDLE ProcessId,
    _Inout_opt_ PPS_CREATE_NOTIFY_INFO CreateInfo);

/* ash_file.c */
FLT_PREOP_CALLBACK_STATUS AgentshPreCreate(_Inout_ PFLT_CALLBACK_DATA Data, _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _Flt_CompletionContext_Outptr_ PVOID *CompletionContext);
FLT_PREOP_CALLBACK_STATUS AgentshPreWrite(_Inout_ PFLT_CALLBACK_DATA Data, _In_ PCFLT_RELATED_OBJECTS FltObjects,
    _Flt_CompletionContext_Outptr_ PVOID *CompletionContext);
FLT_PREOP_CALLBACK_STATUS AgentshPreSetInformation(_Inout_ PFLT_CALLBACK_DATA Data,
    _In_ PCFLT_RELATED_OBJECTS FltObjects, _Flt_CompletionContext_Outptr_ PVOID *CompletionContext);

/* ash_registry.c */
NTSTATUS AgentshRegistryCallback(_In_ PVOID CallbackContext, _In_opt_ PVOID Argument1, _In_opt_ PVOID Argument2);

AGENTSH_INLINE AGENTSH_USTR AgentshUstrFromUnicode(_In_opt_ PCUNICODE_STRING S)
{
    AGENTSH_USTR u;
    u.Buffer = (S != NULL && S->Length != 0) ? (const UINT16 *)S->Buffer : NULL;
    u.Length = (S != NULL && S->Buffer != NULL) ? (UINT32)(S->Length / sizeof(WCHAR)) : 0;
    return u;
}

#endif /* AGENTSH_KERNEL_H */
