/*
 * ash_exclude.c - the set of excluded process ids (MSG_EXCLUDE_PROCESS). The broker excludes itself
 * so its own file and registry I/O never loops back into a policy query. At most
 * AGENTSH_MAX_EXCLUDED_PIDS pids; a change that would exceed it is rejected whole.
 */
#include "agentsh_core.h"

void AgentshExclusionInit(_Out_ AGENTSH_EXCLUSION *Set)
{
    AgentshMemZero(Set, sizeof(*Set));
    AgentshLockInit(&Set->Lock);
}

void AgentshExclusionDestroy(_Inout_ AGENTSH_EXCLUSION *Set)
{
    AgentshLockDelete(&Set->Lock);
}

static BOOLEAN AgentshPidIn(_In_reads_(Count) const UINT32 *Pids, _In_ UINT32 Count, _In_ UINT32 Pid)
{
    UINT32 i;
    for (i = 0; i < Count; i++) {
        if (Pids[i] == Pid) {
            return TRUE;
        }
    }
    return FALSE;
}

NTSTATUS AgentshExclusionApply(_Inout_ AGENTSH_EXCLUSION *Set, _In_ UINT32 Action,
    _In_reads_(Count) const UINT32 *Pids, _In_ UINT32 Count)
{
    UINT32 next[AGENTSH_MAX_EXCLUDED_PIDS];
    UINT32 n = 0, i;
    NTSTATUS status = STATUS_SUCCESS;

    if (Count > AGENTSH_MAX_EXCLUDED_PIDS || Action > EXCLUDE_ACTION_REPLACE) {
        return STATUS_INVALID_PARAMETER;
    }
    for (i = 0; i < Count; i++) {
        if (Pids[i] == 0) {
            return STATUS_INVALID_PARAMETER;
        }
    }
    AgentshLockExclusive(&Set->Lock);
    if (Action == EXCLUDE_ACTION_ADD) {
        AgentshMemCopy(next, Set->Pids, (SIZE_T)Set->Count * sizeof(UINT32));
        n = Set->Count;
        for (i = 0; i < Count && NT_SUCCESS(status); i++) {
            if (!AgentshPidIn(next, n, Pids[i])) {
                if (n == AGENTSH_MAX_EXCLUDED_PIDS) {
                    status = STATUS_INSUFFICIENT_RESOURCES;
                } else {
                    next[n++] = Pids[i];
                }
            }
        }
    } else if (Action == EXCLUDE_ACTION_REMOVE) {
        for (i = 0; i < Set->Count; i++) {
            if (!AgentshPidIn(Pids, Count, Set->Pids[i])) {
                next[n++] = Set->Pids[i];
            }
        }
    } else {
        for (i = 0; i < Count; i++) {
            if (!AgentshPidIn(next, n, Pids[i])) {
                next[n++] = Pids[i];
            }
        }
    }
    if (NT_SUCCESS(status)) {
        if (n != 0) {
            AgentshMemCopy(Set->Pids, next, (SIZE_T)n * sizeof(UINT32));
        }
        Set->Count = n;
    }
    AgentshUnlockExclusive(&Set->Lock);
    return status;
}

BOOLEAN AgentshExclusionContains(_Inout_ AGENTSH_EXCLUSION *Set, _In_ UINT32 ProcessId)
{
    BOOLEAN found;
    if (AgentshAtomicLoad32(&Set->Count) == 0) {
        return FALSE; /* common case: a read of one word, no lock */
    }
    AgentshLockShared(&Set->Lock);
    found = AgentshPidIn(Set->Pids, Set->Count, ProcessId);
    AgentshUnlockShared(&Set->Lock);
    return found;
}

UINT32 AgentshExclusionCount(_Inout_ AGENTSH_EXCLUSION *Set)
{
    UINT32 n;
    AgentshLockShared(&Set->Lock);
    n = Set->Count;
    AgentshUnlockShared(&Set->Lock);
    return n;
}
