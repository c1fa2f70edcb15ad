/*
 * ash_failmode.c - the fail-mode state machine.
 *
 *   NORMAL --(MaxConsecutiveFailures consecutive failed queries)--> FAILING   (Entries++)
 *   FAILING: every query is answered by the fail mode at once, except ONE probe query let through
 *            every ProbeIntervalMs (Probes++); only one probe is outstanding at a time.
 *   FAILING --(any successful query, e.g. the probe)--> NORMAL: counter reset; caller flushes cache
 *   any     --(client reconnect)--> NORMAL, counter reset (AgentshFailReset; caller flushes cache)
 *   NORMAL: a success resets the counter.
 *
 * Failures are: STATUS_TIMEOUT (a success code in NT, tested explicitly), port disconnected, any
 * error status, a short or malformed reply. The seeds' flaw (FAILING was sticky until reconnect and
 * queries kept waiting for the timeout) is what the probe fixes.
 */
#include "agentsh_core.h"

void AgentshFailInit(_Out_ AGENTSH_FAILSTATE *Fail)
{
    AgentshMemZero(Fail, sizeof(*Fail));
    Fail->State = FAIL_STATE_NORMAL;
    AgentshLockInit(&Fail->Lock);
}

void AgentshFailDestroy(_Inout_ AGENTSH_FAILSTATE *Fail)
{
    AgentshLockDelete(&Fail->Lock);
}

int AgentshFailGate(_Inout_ AGENTSH_FAILSTATE *Fail, _In_ UINT64 NowMs, _In_ UINT32 ProbeIntervalMs)
{
    int gate = AGENTSH_GATE_SEND;
    if (AgentshAtomicLoad32(&Fail->State) == FAIL_STATE_NORMAL) {
        return AGENTSH_GATE_SEND; /* hot path: no lock */
    }
    AgentshLockExclusive(&Fail->Lock);
    if (Fail->State == FAIL_STATE_FAILING) {
        if (!Fail->ProbeOutstanding && NowMs >= Fail->LastProbeMs + ProbeIntervalMs) {
            Fail->ProbeOutstanding = TRUE;
            Fail->LastProbeMs = NowMs;
            AgentshAtomicInc64(&Fail->Probes);
            gate = AGENTSH_GATE_PROBE;
        } else {
            gate = AGENTSH_GATE_FAILMODE;
        }
    }
    AgentshUnlockExclusive(&Fail->Lock);
    return gate;
}

BOOLEAN AgentshFailOnSuccess(_Inout_ AGENTSH_FAILSTATE *Fail, _In_ BOOLEAN WasProbe)
{
    BOOLEAN recovered = FALSE;
    if (!WasProbe && AgentshAtomicLoad32(&Fail->State) == FAIL_STATE_NORMAL &&
        AgentshAtomicLoad32(&Fail->ConsecutiveFailures) == 0) {
        return FALSE; /* hot path */
    }
    AgentshLockExclusive(&Fail->Lock);
    if (WasProbe) {
        Fail->ProbeOutstanding = FALSE;
    }
    AgentshAtomicStore32(&Fail->ConsecutiveFailures, 0);
    if (Fail->State == FAIL_STATE_FAILING) {
        AgentshAtomicStore32(&Fail->State, FAIL_STATE_NORMAL);
        recovered = TRUE;
    }
    AgentshUnlockExclusive(&Fail->Lock);
    return recovered;
}

BOOLEAN AgentshFailOnFailure(_Inout_ AGENTSH_FAILSTATE *Fail, _In_ BOOLEAN WasProbe, _In_ UINT64 NowMs,
    _In_ UINT32 MaxConsecutiveFailures)
{
    BOOLEAN entered = FALSE;
    AgentshLockExclusive(&Fail->Lock);
    if (WasProbe) {
        Fail->ProbeOutstanding = FALSE;
        Fail->LastProbeMs = NowMs; /* next probe one interval after this one failed */
    }
    if (Fail->ConsecutiveFailures != 0xFFFFFFFFu) {
        AgentshAtomicStore32(&Fail->ConsecutiveFailures, Fail->ConsecutiveFailures + 1u);
    }
    if (Fail->State == FAIL_STATE_NORMAL && Fail->ConsecutiveFailures >= MaxConsecutiveFailures) {
        AgentshAtomicStore32(&Fail->State, FAIL_STATE_FAILING);
        Fail->LastProbeMs = NowMs;
        Fail->ProbeOutstanding = FALSE;
        AgentshAtomicInc64(&Fail->Entries);
        entered = TRUE;
    }
    AgentshUnlockExclusive(&Fail->Lock);
    return entered;
}

BOOLEAN AgentshFailReset(_Inout_ AGENTSH_FAILSTATE *Fail)
{
    BOOLEAN was;
    AgentshLockExclusive(&Fail->Lock);
    was = Fail->State == FAIL_STATE_FAILING;
    AgentshAtomicStore32(&Fail->State, FAIL_STATE_NORMAL);
    AgentshAtomicStore32(&Fail->ConsecutiveFailures, 0);
    Fail->ProbeOutstanding = FALSE;
    AgentshUnlockExclusive(&Fail->Lock);
    return was;
}

void AgentshFailSnapshot(_Inout_ AGENTSH_FAILSTATE *Fail, _Out_ UINT32 *State, _Out_ UINT32 *Consecutive)
{
    AgentshLockShared(&Fail->Lock);
    *State = Fail->State;
    *Consecutive = Fail->ConsecutiveFailures;
    AgentshUnlockShared(&Fail->Lock);
}
