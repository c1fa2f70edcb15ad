/*
 * ash_process.c - process creation and exit (PsSetCreateProcessNotifyRoutineEx).
 *
 * Session membership follows the CREATOR: the process of the creating thread. Inside this routine
 * the current process is the creator (PsGetCurrentProcessId() == CreatingThreadId.UniqueProcess);
 * CreateInfo->ParentProcessId can be spoofed with PROC_THREAD_ATTRIBUTE_PARENT_PROCESS and is only
 * reported. Called at PASSIVE_LEVEL in a critical region; the core takes push locks only.
 */
#include "ash_kernel.h"

VOID AgentshProcessNotify(_Inout_ PEPROCESS Process, _In_ HANDLE ProcessId, _Inout_opt_ PPS_CREATE_NOTIFY_INFO CreateInfo)
{
    AGENTSH_CORE *core = &AgentshGlobals.Core;
    UINT32 pid = HandleToULong(ProcessId);

    if (CreateInfo != NULL) {
        AGENTSH_USTR image = AgentshUstrFromUnicode(CreateInfo->FileOpenNameAvailable ? CreateInfo->ImageFileName : NULL);
        UINT32 creator = HandleToULong(CreateInfo->CreatingThreadId.UniqueProcess);
        NT_ASSERT(creator == HandleToULong(PsGetCurrentProcessId()));
        (void)AgentshCoreProcessCreated(core, pid, creator, HandleToULong(CreateInfo->ParentProcessId), &image);
    } else {
        (void)AgentshCoreProcessTerminated(core, pid, (INT32)PsGetProcessExitStatus(Process));
    }
}
