/*
 * ash_session.c - sessions and the processes that belong to them.
 *
 * A session is registered by the broker with its root pid. A process joins the session of the
 * process that CREATED it (the creating thread's process, PsGetCurrentProcessId() inside the
 * create-process notify routine), never of the ParentProcessId the creator may have spoofed with
 * PROC_THREAD_ATTRIBUTE_PARENT_PROCESS. Exit removes the process; unregister removes the session and
 * all its processes (the caller also flushes the session's cached decisions).
 *
 * Lookup by pid is O(1) (hash of AGENTSH_PROCESS_BUCKETS chains) under the shared lock and copies the
 * token out: no pointer into the table survives the lock.
 */
#include "agentsh_core.h"

struct _AGENTSH_PROCESS_ENTRY {
    AGENTSH_PROCESS_ENTRY *Next;
    UINT32 ProcessId;
    UINT64 SessionToken;
};

struct _AGENTSH_SESSION_ENTRY {
    AGENTSH_SESSION_ENTRY *Next;
    UINT64 Token;
    UINT32 RootProcessId;
    UINT32 ProcessCount;
    UINT32 WorkspaceLength;
    UINT16 Workspace[1];
};

AGENTSH_INLINE UINT32 AgentshPidBucket(UINT32 Pid)
{
    /* Windows pids are multiples of 4: drop the low bits, then mix. */
    UINT32 h = (Pid >> 2) * 0x9E3779B1u;
    return (h >> 16 ^ h) & (AGENTSH_PROCESS_BUCKETS - 1);
}

void AgentshSessionInit(_Out_ AGENTSH_SESSION_TABLE *Table)
{
    AgentshMemZero(Table, sizeof(*Table));
    AgentshLockInit(&Table->Lock);
}

void AgentshSessionDestroy(_Inout_ AGENTSH_SESSION_TABLE *Table)
{
    UINT32 i;
    AgentshLockExclusive(&Table->Lock);
    for (i = 0; i < AGENTSH_PROCESS_BUCKETS; i++) {
        while (Table->Buckets[i] != NULL) {
            AGENTSH_PROCESS_ENTRY *p = Table->Buckets[i];
            Table->Buckets[i] = p->Next;
            AgentshFree(p, AGENTSH_TAG_PROCESS);
        }
    }
    while (Table->Sessions != NULL) {
        AGENTSH_SESSION_ENTRY *s = Table->Sessions;
        Table->Sessions = s->Next;
        AgentshFree(s, AGENTSH_TAG_SESSION);
    }
    Table->SessionCount = 0;
    Table->ProcessCount = 0;
    AgentshUnlockExclusive(&Table->Lock);
    AgentshLockDelete(&Table->Lock);
}

static AGENTSH_SESSION_ENTRY *AgentshFindSessionLocked(_In_ AGENTSH_SESSION_TABLE *Table, _In_ UINT64 Token)
{
    AGENTSH_SESSION_ENTRY *s;
    for (s = Table->Sessions; s != NULL; s = s->Next) {
        if (s->Token == Token) {
            return s;
        }
    }
    return NULL;
}

static AGENTSH_PROCESS_ENTRY *AgentshFindProcessLocked(_In_ AGENTSH_SESSION_TABLE *Table, _In_ UINT32 Pid)
{
    AGENTSH_PROCESS_ENTRY *p;
    for (p = Table->Buckets[AgentshPidBucket(Pid)]; p != NULL; p = p->Next) {
        if (p->ProcessId == Pid) {
            return p;
        }
    }
    return NULL;
}

/* Removes Pid; returns its token or 0. Lock held exclusive. */
static UINT64 AgentshRemoveProcessLocked(_Inout_ AGENTSH_SESSION_TABLE *Table, _In_ UINT32 Pid)
{
    AGENTSH_PROCESS_ENTRY **pp = &Table->Buckets[AgentshPidBucket(Pid)];
    while (*pp != NULL) {
        AGENTSH_PROCESS_ENTRY *p = *pp;
        if (p->ProcessId == Pid) {
            UINT64 token = p->SessionToken;
            AGENTSH_SESSION_ENTRY *s = AgentshFindSessionLocked(Table, token);
            *pp = p->Next;
            AgentshFree(p, AGENTSH_TAG_PROCESS);
            Table->ProcessCount--;
            if (s != NULL && s->ProcessCount > 0) {
                s->ProcessCount--;
            }
            return token;
        }
        pp = &p->Next;
    }
    return 0;
}

/* Inserts the preallocated P (Pid, token set). Lock held exclusive. */
static void AgentshInsertProcessLocked(_Inout_ AGENTSH_SESSION_TABLE *Table, _Inout_ AGENTSH_PROCESS_ENTRY *P)
{
    UINT32 b = AgentshPidBucket(P->ProcessId);
    AGENTSH_SESSION_ENTRY *s = AgentshFindSessionLocked(Table, P->SessionToken);
    P->Next = Table->Buckets[b];
    Table->Buckets[b] = P;
    Table->ProcessCount++;
    if (s != NULL) {
        s->ProcessCount++;
    }
}

_Must_inspect_result_ NTSTATUS AgentshSessionRegister(_Inout_ AGENTSH_SESSION_TABLE *Table, _In_ UINT64 Token,
    _In_ UINT32 RootProcessId, _In_ const AGENTSH_USTR *Workspace)
{
    AGENTSH_SESSION_ENTRY *s, *existing;
    AGENTSH_PROCESS_ENTRY *p, *root;
    NTSTATUS status = STATUS_SUCCESS;
    SIZE_T size;

    if (Token == 0 || RootProcessId == 0 || Workspace->Length > AGENTSH_MAX_STRING_CHARS) {
        return STATUS_INVALID_PARAMETER;
    }
    size = offsetof(AGENTSH_SESSION_ENTRY, Workspace) + (SIZE_T)(Workspace->Length + 1u) * sizeof(UINT16);
    s = (AGENTSH_SESSION_ENTRY *)AgentshAlloc(size, AGENTSH_TAG_SESSION, AGENTSH_POOL_PAGED);
    p = (AGENTSH_PROCESS_ENTRY *)AgentshAlloc(sizeof(*p), AGENTSH_TAG_PROCESS, AGENTSH_POOL_PAGED);
    if (s == NULL || p == NULL) {
        if (s != NULL) {
            AgentshFree(s, AGENTSH_TAG_SESSION);
        }
        if (p != NULL) {
            AgentshFree(p, AGENTSH_TAG_PROCESS);
        }
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    s->Token = Token;
    s->RootProcessId = RootProcessId;
    s->WorkspaceLength = Workspace->Length;
    if (Workspace->Length != 0) {
        AgentshMemCopy(s->Workspace, Workspace->Buffer, (SIZE_T)Workspace->Length * sizeof(UINT16));
    }
    p->ProcessId = RootProcessId;
    p->SessionToken = Token;

    AgentshLockExclusive(&Table->Lock);
    existing = AgentshFindSessionLocked(Table, Token);
    root = AgentshFindProcessLocked(Table, RootProcessId);
    if (existing != NULL) {
        /* Idempotent re-registration (a reconnecting broker): same root, same session. */
        if (existing->RootProcessId != RootProcessId || (root != NULL && root->SessionToken != Token)) {
            status = STATUS_OBJECT_NAME_COLLISION;
        } else if (root == NULL) {
            if (Table->ProcessCount >= AGENTSH_MAX_PROCESSES) {
                status = STATUS_INSUFFICIENT_RESOURCES;
            } else {
                AgentshInsertProcessLocked(Table, p);
                p = NULL;
            }
        }
    } else if (root != NULL) {
        status = STATUS_OBJECT_NAME_COLLISION; /* the root already belongs to another session */
    } else if (Table->SessionCount >= AGENTSH_MAX_SESSIONS || Table->ProcessCount >= AGENTSH_MAX_PROCESSES) {
        status = STATUS_INSUFFICIENT_RESOURCES;
    } else {
        s->Next = Table->Sessions;
        Table->Sessions = s;
        Table->SessionCount++;
        s = NULL;
        AgentshInsertProcessLocked(Table, p);
        p = NULL;
    }
    AgentshUnlockExclusive(&Table->Lock);

    if (s != NULL) {
        AgentshFree(s, AGENTSH_TAG_SESSION);
    }
    if (p != NULL) {
        AgentshFree(p, AGENTSH_TAG_PROCESS);
    }
    return status;
}

NTSTATUS AgentshSessionUnregister(_Inout_ AGENTSH_SESSION_TABLE *Table, _In_ UINT64 Token)
{
    AGENTSH_SESSION_ENTRY **sp;
    AGENTSH_SESSION_ENTRY *found = NULL;
    UINT32 i;

    AgentshLockExclusive(&Table->Lock);
    for (sp = &Table->Sessions; *sp != NULL; sp = &(*sp)->Next) {
        if ((*sp)->Token == Token) {
            found = *sp;
            *sp = found->Next;
            Table->SessionCount--;
            break;
        }
    }
    if (found != NULL) {
        for (i = 0; i < AGENTSH_PROCESS_BUCKETS && found->ProcessCount > 0; i++) {
            AGENTSH_PROCESS_ENTRY **pp = &Table->Buckets[i];
            while (*pp != NULL) {
                AGENTSH_PROCESS_ENTRY *p = *pp;
                if (p->SessionToken == Token) {
                    *pp = p->Next;
                    AgentshFree(p, AGENTSH_TAG_PROCESS);
                    Table->ProcessCount--;
                    found->ProcessCount--;
                } else {
                    pp = &p->Next;
                }
            }
        }
    }
    AgentshUnlockExclusive(&Table->Lock);
    if (found == NULL) {
        return STATUS_NOT_FOUND;
    }
    AgentshFree(found, AGENTSH_TAG_SESSION);
    return STATUS_SUCCESS;
}

BOOLEAN AgentshSessionLookupProcess(_Inout_ AGENTSH_SESSION_TABLE *Table, _In_ UINT32 ProcessId,
    _Out_opt_ UINT64 *Token)
{
    AGENTSH_PROCESS_ENTRY *p;
    UINT64 token = 0;
    AgentshLockShared(&Table->Lock);
    p = AgentshFindProcessLocked(Table, ProcessId);
    if (p != NULL) {
        token = p->SessionToken;
    }
    AgentshUnlockShared(&Table->Lock);
    if (Token != NULL) {
        *Token = token;
    }
    return token != 0;
}

BOOLEAN AgentshSessionProcessCreated(_Inout_ AGENTSH_SESSION_TABLE *Table, _In_ UINT32 ProcessId,
    _In_ UINT32 CreatorProcessId, _Out_opt_ UINT64 *Token)
{
    AGENTSH_PROCESS_ENTRY *p, *creator;
    UINT64 token = 0;
    BOOLEAN joined = FALSE;

    if (Token != NULL) {
        *Token = 0;
    }
    if (ProcessId == 0) {
        return FALSE;
    }
    /* Fast path for the whole system's process creations: creator not tracked. A stale entry for
     * a reused ProcessId is dropped in the slow path below when the creator is tracked, and by the
     * exit notification otherwise. */
    if (!AgentshSessionLookupProcess(Table, CreatorProcessId, NULL)) {
        if (AgentshSessionLookupProcess(Table, ProcessId, NULL)) {
            AgentshLockExclusive(&Table->Lock);
            (void)AgentshRemoveProcessLocked(Table, ProcessId); /* pid reused by an untracked creator */
            AgentshUnlockExclusive(&Table->Lock);
        }
        return FALSE;
    }
    p = (AGENTSH_PROCESS_ENTRY *)AgentshAlloc(sizeof(*p), AGENTSH_TAG_PROCESS, AGENTSH_POOL_PAGED);
    if (p == NULL) {
        return FALSE; /* untracked: the glue logs it; fail-safe would need a deny-all, see README */
    }
    AgentshLockExclusive(&Table->Lock);
    creator = AgentshFindProcessLocked(Table, CreatorProcessId);
    if (creator != NULL) {
        token = creator->SessionToken;
        (void)AgentshRemoveProcessLocked(Table, ProcessId);
        if (Table->ProcessCount < AGENTSH_MAX_PROCESSES) {
            p->ProcessId = ProcessId;
            p->SessionToken = token;
            AgentshInsertProcessLocked(Table, p);
            p = NULL;
            joined = TRUE;
        }
    }
    AgentshUnlockExclusive(&Table->Lock);
    if (p != NULL) {
        AgentshFree(p, AGENTSH_TAG_PROCESS);
    }
    if (joined && Token != NULL) {
        *Token = token;
    }
    return joined;
}

BOOLEAN AgentshSessionProcessTerminated(_Inout_ AGENTSH_SESSION_TABLE *Table, _In_ UINT32 ProcessId,
    _Out_opt_ UINT64 *Token)
{
    UINT64 token = 0;
    if (AgentshSessionLookupProcess(Table, ProcessId, NULL)) {
        AgentshLockExclusive(&Table->Lock);
        token = AgentshRemoveProcessLocked(Table, ProcessId);
        AgentshUnlockExclusive(&Table->Lock);
    }
    if (Token != NULL) {
        *Token = token;
    }
    return token != 0;
}

void AgentshSessionCounts(_Inout_ AGENTSH_SESSION_TABLE *Table, _Out_ UINT32 *Sessions, _Out_ UINT32 *Processes)
{
    AgentshLockShared(&Table->Lock);
    *Sessions = Table->SessionCount;
    *Processes = Table->ProcessCount;
    AgentshUnlockShared(&Table->Lock);
}

BOOLEAN AgentshSessionQuery(_Inout_ AGENTSH_SESSION_TABLE *Table, _In_ UINT64 Token, _Out_ UINT32 *RootProcessId,
    _Out_ UINT32 *ProcessCount)
{
    AGENTSH_SESSION_ENTRY *s;
    BOOLEAN found = FALSE;
    *RootProcessId = 0;
    *ProcessCount = 0;
    AgentshLockShared(&Table->Lock);
    s = AgentshFindSessionLocked(Table, Token);
    if (s != NULL) {
        *RootProcessId = s->RootProcessId;
        *ProcessCount = s->ProcessCount;
        found = TRUE;
    }
    AgentshUnlockShared(&Table->Lock);
    return found;
}
