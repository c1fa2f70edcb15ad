/*
 * ash_core.c - the core instance and the single decision entry point.
 *
 * AgentshCoreDecide, in order:
 *   1. excluded pid                       -> allow  (source excluded)
 *   2. pid not in a session               -> allow  (source untracked)
 *   3. cache hit                          -> cached decision (source cache)
 *   4. identical query in flight          -> wait for its answer, bounded by the query timeout
 *   5. no client / client shut down       -> fail mode (source failmode)
 *   6. FAILING and not the probe          -> fail mode at once
 *   7. ask the client through Send       -> broker decision; PENDING = deny, never cached
 *      failure (STATUS_TIMEOUT, disconnected, short/malformed reply) -> fail mode, failure counted
 *
 * A decision made without an answer of its own that is not a plain allow from the cache (a DENY
 * from the cache or from an identical query, every fail-mode answer) is reported to the client as
 * MSG_DECISION_EVENT when the config asks (AGENTSH_CONFIG_FLAG_DECISION_EVENTS), rate limited.
 */
#include "agentsh_core.h"

struct _AGENTSH_NOTIFY_ITEM {
    AGENTSH_NOTIFY_ITEM *Next;
    UINT32 Size;
    UINT32 Reserved;
    /* message follows (8-byte aligned) */
};

static UINT64 AgentshDefaultClock(_In_opt_ void *Context)
{
    (void)Context;
    return AgentshMonotonicMs();
}

UINT64 AgentshCoreNow(_In_ AGENTSH_CORE *Core)
{
    return Core->Clock(Core->ClockContext);
}

_Must_inspect_result_ NTSTATUS AgentshCoreInit(_Out_ AGENTSH_CORE *Core, _In_opt_ AGENTSH_SEND_FN Send,
    _In_opt_ void *SendContext, _In_opt_ AGENTSH_CLOCK_FN Clock, _In_opt_ void *ClockContext)
{
    NTSTATUS status;
    AgentshMemZero(Core, sizeof(*Core));
    AgentshConfigDefaults(&Core->Config);
    status = AgentshCacheInit(&Core->Cache, Core->Config.CacheMaxEntries);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    AgentshLockInit(&Core->ConfigLock);
    AgentshSessionInit(&Core->Sessions);
    AgentshFailInit(&Core->Fail);
    AgentshExclusionInit(&Core->Exclusion);
    AgentshLockInit(&Core->Notify.Lock);
    AgentshEventInit(&Core->Notify.Wake);
    Core->Send = Send;
    Core->SendContext = SendContext;
    Core->Clock = Clock != NULL ? Clock : AgentshDefaultClock;
    Core->ClockContext = ClockContext;
    return STATUS_SUCCESS;
}

void AgentshCoreDestroy(_Inout_ AGENTSH_CORE *Core)
{
    AgentshCoreStopNotifications(Core);
    /* drop queued notifications */
    for (;;) {
        AGENTSH_NOTIFY_ITEM *item;
        AgentshLockExclusive(&Core->Notify.Lock);
        item = Core->Notify.Head;
        if (item != NULL) {
            Core->Notify.Head = item->Next;
            if (Core->Notify.Head == NULL) {
                Core->Notify.Tail = NULL;
            }
            Core->Notify.Count--;
            Core->Notify.Bytes -= item->Size;
        }
        AgentshUnlockExclusive(&Core->Notify.Lock);
        if (item == NULL) {
            break;
        }
        AgentshFree(item, AGENTSH_TAG_NOTIFY);
    }
    AgentshEventDelete(&Core->Notify.Wake);
    AgentshLockDelete(&Core->Notify.Lock);
    AgentshExclusionDestroy(&Core->Exclusion);
    AgentshFailDestroy(&Core->Fail);
    AgentshSessionDestroy(&Core->Sessions);
    AgentshCacheDestroy(&Core->Cache);
    AgentshLockDelete(&Core->ConfigLock);
}

void AgentshCoreGetConfig(_Inout_ AGENTSH_CORE *Core, _Out_ AGENTSH_CORE_CONFIG *Config)
{
    AgentshLockShared(&Core->ConfigLock);
    *Config = Core->Config;
    AgentshUnlockShared(&Core->ConfigLock);
}

static void AgentshFailModeVerdict(_Inout_ AGENTSH_CORE *Core, _In_ const AGENTSH_CORE_CONFIG *Config,
    _Out_ UINT32 *Decision)
{
    *Decision = Config->FailMode == FAIL_MODE_CLOSED ? DECISION_DENY : DECISION_ALLOW;
    AgentshAtomicInc64(&Core->FailModeDecisions);
}

/* Steps 5-7. Returns the decision to enforce; Insert and TtlMs tell whether and how long to cache. */
static void AgentshCoreAsk(_Inout_ AGENTSH_CORE *Core, _In_ const AGENTSH_DECIDE_REQUEST *Request,
    _In_ UINT64 Token, _In_ const AGENTSH_CORE_CONFIG *Config, _Out_ UINT32 *Decision, _Out_ UINT32 *Raw,
    _Out_ UINT32 *Source, _Out_ BOOLEAN *Insert, _Out_ UINT32 *TtlMs, _Out_ NTSTATUS *QueryStatus,
    _Out_ BOOLEAN *Recovered, _Out_ UINT32 *Reason)
{
    AGENTSH_POLICY_RESPONSE reply;
    UINT32 replyLength = sizeof(reply);
    UINT32 answer, ttl;
    void *message = NULL;
    UINT32 size = 0;
    UINT64 requestId;
    NTSTATUS status;
    int gate;
    BOOLEAN probe;

    *Insert = FALSE;
    *TtlMs = 0;
    *QueryStatus = STATUS_SUCCESS;
    *Recovered = FALSE;
    *Source = AGENTSH_SOURCE_FAILMODE;
    *Reason = 0;

    if (Core->Send == NULL || AgentshAtomicLoad32(&Core->ClientConnected) == 0 ||
        AgentshAtomicLoad32(&Core->ClientShutdown) != 0) {
        *Reason = DECISION_REASON_NO_CLIENT;
        AgentshFailModeVerdict(Core, Config, Decision);
        *Raw = *Decision;
        return;
    }
    requestId = AgentshAtomicInc64(&Core->NextRequestId);
    status = AgentshBuildPolicyRequest(Request, Token, requestId, &message, &size);
    if (!NT_SUCCESS(status)) {
        /* not the broker's fault: no fail-state change */
        *QueryStatus = status;
        *Reason = DECISION_REASON_UNDECIDABLE;
        AgentshFailModeVerdict(Core, Config, Decision);
        *Raw = *Decision;
        return;
    }
    gate = AgentshFailGate(&Core->Fail, AgentshCoreNow(Core), Config->ProbeIntervalMs);
    if (gate == AGENTSH_GATE_FAILMODE) {
        AgentshFreeMessage(message);
        *Reason = DECISION_REASON_FAILING;
        AgentshFailModeVerdict(Core, Config, Decision);
        *Raw = *Decision;
        return;
    }
    probe = gate == AGENTSH_GATE_PROBE ? TRUE : FALSE;
    AgentshAtomicInc64(Request->Kind == AGENTSH_KIND_FILE ? &Core->FileQueries : &Core->RegistryQueries);

    AgentshMemZero(&reply, sizeof(reply));
    status = Core->Send(Core->SendContext, message, size, &reply, &replyLength, Config->PolicyQueryTimeoutMs);
    AgentshFreeMessage(message);
    *QueryStatus = status;

    /* STATUS_TIMEOUT is NT_SUCCESS(): only STATUS_SUCCESS with a well-formed reply is a success. */
    if (status == STATUS_SUCCESS && replyLength <= sizeof(reply) &&
        NT_SUCCESS(AgentshValidateReply(&reply, replyLength, requestId, &answer, &ttl))) {
        *Recovered = AgentshFailOnSuccess(&Core->Fail, probe);
        *Source = AGENTSH_SOURCE_BROKER;
        *Raw = answer;
        if (answer == DECISION_PENDING) {
            AgentshAtomicInc64(&Core->Pending);
            *Decision = DECISION_DENY; /* approval outstanding: deny now, never cache */
            return;
        }
        *Decision = answer;
        if (ttl != AGENTSH_TTL_NO_CACHE) {
            if (ttl == AGENTSH_TTL_DEFAULT) {
                ttl = Config->CacheDefaultTTLMs;
            }
            if (ttl > Config->CacheMaxTTLMs) {
                ttl = Config->CacheMaxTTLMs;
            }
            *Insert = TRUE;
            *TtlMs = ttl;
        }
        return;
    }
    if (status == STATUS_SUCCESS) {
        *QueryStatus = STATUS_INVALID_PARAMETER; /* malformed or short reply */
    }
    AgentshAtomicInc64(&Core->Failures);
    if (status == STATUS_TIMEOUT) {
        AgentshAtomicInc64(&Core->Timeouts);
    }
    (void)AgentshFailOnFailure(&Core->Fail, probe, AgentshCoreNow(Core), Config->MaxConsecutiveFailures);
    *Reason = DECISION_REASON_QUERY_FAILED;
    AgentshFailModeVerdict(Core, Config, Decision);
    *Raw = *Decision;
}

static BOOLEAN AgentshQueueNotification(_Inout_ AGENTSH_CORE *Core, _In_ const void *Message, _In_ UINT32 Size,
    _In_ BOOLEAN Hold);

/* Decision events that never reached the client (Count, saturating) go to the next one's Suppressed. */
static void AgentshCarrySuppressed(_Inout_ AGENTSH_NOTIFY_QUEUE *q, _In_ UINT64 Count)
{
    AgentshLockExclusive(&q->Lock);
    q->DecisionSuppressed = Count >= 0xFFFFFFFFull - q->DecisionSuppressed ? 0xFFFFFFFFu
                                                                          : q->DecisionSuppressed + (UINT32)Count;
    AgentshUnlockExclusive(&q->Lock);
}

/* MSG_DECISION_EVENT for a decision made without an answer of its own. At most
 * AGENTSH_DECISION_EVENTS_PER_SECOND are queued per second; the ones left out (or lost to a full
 * queue or a failed allocation) are counted and the next event queued carries the count. */
static BOOLEAN AgentshReportDecision(_Inout_ AGENTSH_CORE *Core, _In_ const AGENTSH_DECIDE_REQUEST *Request,
    _In_ UINT64 Token, _In_ UINT32 Decision, _In_ UINT32 Source, _In_ UINT32 Reason, _In_ NTSTATUS QueryStatus)
{
    AGENTSH_NOTIFY_QUEUE *q = &Core->Notify;
    UINT64 now = AgentshCoreNow(Core);
    UINT32 suppressed = 0;
    BOOLEAN admit;
    void *msg;
    UINT32 size;

    AgentshLockExclusive(&q->Lock);
    /* a clock read before another thread opened the window (now < start) counts in that window */
    if (q->DecisionWindowCount == 0 || (now >= q->DecisionWindowMs && now - q->DecisionWindowMs >= 1000u)) {
        q->DecisionWindowMs = now;
        q->DecisionWindowCount = 0;
    }
    admit = q->DecisionWindowCount < AGENTSH_DECISION_EVENTS_PER_SECOND ? TRUE : FALSE;
    if (admit) {
        q->DecisionWindowCount++;
        suppressed = q->DecisionSuppressed;
        q->DecisionSuppressed = 0;
    } else if (q->DecisionSuppressed != 0xFFFFFFFFu) {
        q->DecisionSuppressed++;
    }
    AgentshUnlockExclusive(&q->Lock);
    if (!admit) {
        return FALSE;
    }
    if (NT_SUCCESS(AgentshBuildDecisionEvent(Request, Token, Decision, Source, Reason, QueryStatus, suppressed,
                                             &msg, &size))) {
        BOOLEAN queued = AgentshQueueNotification(Core, msg, size, TRUE);
        AgentshFreeMessage(msg);
        if (queued) {
            return TRUE;
        }
    } else {
        AgentshAtomicInc64(&q->Dropped);
    }
    /* not queued: this one and the ones it carried go to the next */
    AgentshCarrySuppressed(q, (UINT64)suppressed + 1u);
    return FALSE;
}

/* The DecisionCounts slot of (DECISION_SOURCE_*, kind, operation, enforced decision); a kind or an
 * operation out of range counts as 0. */
static UINT32 AgentshDecisionSlot(_In_ UINT32 Source, _In_ UINT32 Kind, _In_ UINT32 Operation, _In_ UINT32 Decision)
{
    return AGENTSH_DECISION_SLOT(Source, Kind <= AGENTSH_KIND_REGISTRY ? Kind : 0u, Operation < 8u ? Operation : 0u,
                                 Decision == DECISION_ALLOW ? 0u : 1u);
}

BOOLEAN AgentshCoreShouldCheck(_Inout_ AGENTSH_CORE *Core, _In_ UINT32 ProcessId, _Out_opt_ UINT64 *Token)
{
    if (Token != NULL) {
        *Token = 0;
    }
    if (AgentshExclusionContains(&Core->Exclusion, ProcessId)) {
        AgentshAtomicInc64(&Core->ExcludedOps);
        return FALSE;
    }
    return AgentshSessionLookupProcess(&Core->Sessions, ProcessId, Token);
}

void AgentshCoreDecide(_Inout_ AGENTSH_CORE *Core, _In_ const AGENTSH_DECIDE_REQUEST *Request,
    _Out_ AGENTSH_VERDICT *Verdict)
{
    AGENTSH_CORE_CONFIG config;
    AGENTSH_CACHE_KEY key;
    AGENTSH_INFLIGHT *inflight = NULL;
    AGENTSH_INFLIGHT_ANSWER answer;
    AGENTSH_USTR none = AGENTSH_USTR_EMPTY;
    const AGENTSH_USTR *k1, *k2;
    UINT64 token = 0, generation;
    UINT32 decision = DECISION_DENY, raw, source = AGENTSH_SOURCE_FAILMODE, ttl = 0, reason = 0;
    BOOLEAN insert = FALSE, recovered = FALSE;
    NTSTATUS status;
    int rc;

    AgentshMemZero(Verdict, sizeof(*Verdict));
    if (AgentshExclusionContains(&Core->Exclusion, Request->ProcessId)) {
        AgentshAtomicInc64(&Core->ExcludedOps);
        Verdict->Decision = Verdict->RawDecision = DECISION_ALLOW;
        Verdict->Source = AGENTSH_SOURCE_EXCLUDED;
        return;
    }
    if (!AgentshSessionLookupProcess(&Core->Sessions, Request->ProcessId, &token)) {
        Verdict->Decision = Verdict->RawDecision = DECISION_ALLOW;
        Verdict->Source = AGENTSH_SOURCE_UNTRACKED;
        return;
    }
    Verdict->SessionToken = token;
    AgentshCoreGetConfig(Core, &config);

    if (Request->Kind == AGENTSH_KIND_FILE) {
        k1 = &Request->Strings[1]; /* rename / link destination */
        k2 = &none;                /* the volume is a prefix of the path: not part of the key */
    } else if (Request->Kind == AGENTSH_KIND_REGISTRY) {
        k1 = &Request->Strings[2]; /* new name (rename key) */
        k2 = &Request->Strings[1]; /* value name */
    } else {
        k1 = k2 = &none;
    }
    if (Request->Kind != AGENTSH_KIND_FILE && Request->Kind != AGENTSH_KIND_REGISTRY) {
        status = STATUS_INVALID_PARAMETER;
    } else {
        status = AgentshCacheKeyInit(&key, token, Request->Kind, Request->Operation, &Request->Strings[0], k1, k2);
    }
    if (!NT_SUCCESS(status)) {
        AgentshFailModeVerdict(Core, &config, &decision);
        Verdict->QueryStatus = status;
        raw = decision;
        source = AGENTSH_SOURCE_FAILMODE;
        reason = DECISION_REASON_UNDECIDABLE;
        goto done;
    }

    rc = AgentshCacheLookupOrJoin(&Core->Cache, &key, AgentshCoreNow(Core), &decision, &inflight);
    if (rc == AGENTSH_CACHE_HIT) {
        raw = decision;
        source = AGENTSH_SOURCE_CACHE;
        reason = DECISION_REASON_CACHED;
    } else if (rc == AGENTSH_CACHE_MISS_WAITER) {
        Verdict->Collapsed = 1;
        if (!AgentshCacheWaitQuery(inflight, config.PolicyQueryTimeoutMs, &answer)) {
            AgentshFailModeVerdict(Core, &config, &decision);
            raw = decision;
            source = AGENTSH_SOURCE_FAILMODE;
            reason = DECISION_REASON_WAIT_TIMEOUT;
        } else {
            decision = answer.Decision;
            raw = answer.RawDecision;
            source = answer.Source;
            reason = DECISION_REASON_COLLAPSED;
            if (source == AGENTSH_SOURCE_FAILMODE) {
                /* the fail mode answered the query waited on: this one too, for the same reason */
                AgentshAtomicInc64(&Core->FailModeDecisions);
                reason = answer.Reason;
                Verdict->QueryStatus = answer.QueryStatus;
            }
        }
    } else {
        generation = rc == AGENTSH_CACHE_MISS_OWNER ? inflight->Generation : AgentshCacheGeneration(&Core->Cache);
        AgentshCoreAsk(Core, Request, token, &config, &decision, &raw, &source, &insert, &ttl,
                       &Verdict->QueryStatus, &recovered, &reason);
        if (recovered) {
            /* left FAILING: decisions cached before the outage may be stale */
            AgentshCacheInvalidateAll(&Core->Cache);
            generation = AgentshCacheGeneration(&Core->Cache);
        }
        if (rc == AGENTSH_CACHE_MISS_OWNER) {
            answer.Decision = decision;
            answer.RawDecision = raw;
            answer.Source = source;
            answer.Reason = reason;
            answer.QueryStatus = Verdict->QueryStatus;
            AgentshCacheCompleteQuery(&Core->Cache, inflight, &answer, insert, ttl, AgentshCoreNow(Core), generation);
        } else if (insert) {
            AgentshCacheInsert(&Core->Cache, &key, decision, ttl, AgentshCoreNow(Core), generation);
        }
    }
    AgentshCacheKeyFree(&key);

done:
    AgentshAtomicInc64(decision == DECISION_ALLOW ? &Core->Allow : &Core->Deny);
    Verdict->Decision = decision;
    Verdict->RawDecision = raw;
    Verdict->Source = source;
    Verdict->Reason = reason;
    if (reason != 0) {
        /* decided without an answer of its own: the client cannot count it */
        UINT32 how = source == AGENTSH_SOURCE_FAILMODE ? DECISION_SOURCE_FAIL_MODE : DECISION_SOURCE_CACHE;
        UINT32 slot = AgentshDecisionSlot(how, Request->Kind, Request->Operation, decision);
        AgentshAtomicInc64(&Core->DecisionCounts[slot]);
        /* and, unless it is a plain allow from the cache, reported when the config asks. QueryStatus is
         * 0 unless the query failed or could not be built (REASON_QUERY_FAILED, REASON_UNDECIDABLE). */
        if ((config.Flags & AGENTSH_CONFIG_FLAG_DECISION_EVENTS) != 0 &&
            (how == DECISION_SOURCE_FAIL_MODE || decision == DECISION_DENY)) {
            Verdict->Reported = (UINT32)AgentshReportDecision(Core, Request, token, decision, how, reason,
                                                              Verdict->QueryStatus);
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Notifications
 * ------------------------------------------------------------------------------------------- */

/* Hold (decision events): queue even while no client is connected (the worker sends it to the next
 * client), and wake the worker only by the batch (AGENTSH_NOTIFY_LAZY_BATCH). Returns TRUE when
 * queued; a notification not queued is counted as dropped. */
static BOOLEAN AgentshQueueNotification(_Inout_ AGENTSH_CORE *Core, _In_ const void *Message, _In_ UINT32 Size,
    _In_ BOOLEAN Hold)
{
    AGENTSH_NOTIFY_QUEUE *q = &Core->Notify;
    AGENTSH_NOTIFY_ITEM *item;
    BOOLEAN queued = FALSE;
    UINT32 count = 0;

    if ((!Hold && AgentshAtomicLoad32(&Core->ClientConnected) == 0) || AgentshAtomicLoad32(&q->Stopping) != 0) {
        AgentshAtomicInc64(&q->Dropped);
        return FALSE;
    }
    item = (AGENTSH_NOTIFY_ITEM *)AgentshAlloc(sizeof(*item) + (SIZE_T)Size, AGENTSH_TAG_NOTIFY,
                                               AGENTSH_POOL_PAGED);
    if (item == NULL) {
        AgentshAtomicInc64(&q->Dropped);
        return FALSE;
    }
    item->Next = NULL;
    item->Size = Size;
    AgentshMemCopy(item + 1, Message, Size);
    AgentshLockExclusive(&q->Lock);
    if (q->Count < AGENTSH_NOTIFY_QUEUE_MAX && q->Bytes + Size <= AGENTSH_NOTIFY_QUEUE_MAX_BYTES) {
        q->Bytes += Size;
        if (q->Tail != NULL) {
            q->Tail->Next = item;
        } else {
            q->Head = item;
        }
        q->Tail = item;
        q->Count++;
        count = q->Count;
        queued = TRUE;
    }
    AgentshUnlockExclusive(&q->Lock);
    if (!queued) {
        AgentshFree(item, AGENTSH_TAG_NOTIFY);
        AgentshAtomicInc64(&q->Dropped);
        return FALSE;
    }
    /* while no client is connected, the connect wakes the worker; a decision event (Hold) waits for
     * a batch or the end of the worker's wait (AGENTSH_NOTIFY_LAZY_BATCH) */
    if (AgentshAtomicLoad32(&Core->ClientConnected) != 0 && (!Hold || count >= AGENTSH_NOTIFY_LAZY_BATCH)) {
        AgentshEventSet(&q->Wake);
    }
    return TRUE;
}

BOOLEAN AgentshCoreRunNotifications(_Inout_ AGENTSH_CORE *Core, _In_ UINT32 WaitMs)
{
    AGENTSH_NOTIFY_QUEUE *q = &Core->Notify;
    UINT64 now;
    if (AgentshAtomicLoad32(&q->Stopping) != 0) {
        return FALSE;
    }
    (void)AgentshEventWait(&q->Wake, WaitMs);
    AgentshEventReset(&q->Wake); /* reset before draining: a later Set is never lost */
    for (;;) {
        AGENTSH_NOTIFY_ITEM *item;
        BOOLEAN sent = FALSE;
        if (AgentshAtomicLoad32(&q->Stopping) == 0 &&
            (Core->Send == NULL || AgentshAtomicLoad32(&Core->ClientConnected) == 0)) {
            break; /* no client: what is queued is held for the next one (the connect wakes us) */
        }
        AgentshLockExclusive(&q->Lock);
        item = q->Head;
        if (item != NULL) {
            q->Head = item->Next;
            if (q->Head == NULL) {
                q->Tail = NULL;
            }
            q->Count--;
            q->Bytes -= item->Size;
        }
        AgentshUnlockExclusive(&q->Lock);
        if (item == NULL) {
            break;
        }
        if (AgentshAtomicLoad32(&q->Stopping) == 0 && Core->Send != NULL &&
            AgentshAtomicLoad32(&Core->ClientConnected) != 0) {
            NTSTATUS status = Core->Send(Core->SendContext, item + 1, item->Size, NULL, NULL,
                                         AGENTSH_NOTIFY_TIMEOUT_MS);
            sent = status == STATUS_SUCCESS ? TRUE : FALSE;
            AgentshAtomicInc64(sent ? &q->Sent : &q->SendFailures);
        } else {
            AgentshAtomicInc64(&q->Dropped);
        }
        if (!sent && item->Size >= sizeof(AGENTSH_DECISION_EVENT) &&
            ((const AGENTSH_MESSAGE_HEADER *)(item + 1))->Type == MSG_DECISION_EVENT) {
            /* a lost report (send failed or timed out, client gone): it and what it carried go on */
            const AGENTSH_DECISION_EVENT *lost = (const AGENTSH_DECISION_EVENT *)(item + 1);
            AgentshCarrySuppressed(q, (UINT64)lost->Suppressed + 1u);
        }
        AgentshFree(item, AGENTSH_TAG_NOTIFY);
    }
    /* a walk of the whole cache under its lock: once a second, not at every wait's end */
    now = AgentshCoreNow(Core);
    if (now < q->ReclaimedMs || now - q->ReclaimedMs >= AGENTSH_RECLAIM_INTERVAL_MS) {
        q->ReclaimedMs = now;
        (void)AgentshCacheReclaimExpired(&Core->Cache, now, 4096);
    }
    return AgentshAtomicLoad32(&q->Stopping) == 0 ? TRUE : FALSE;
}

void AgentshCoreStopNotifications(_Inout_ AGENTSH_CORE *Core)
{
    AgentshAtomicStore32(&Core->Notify.Stopping, 1);
    AgentshEventSet(&Core->Notify.Wake);
}

void AgentshCoreNotifyStats(_Inout_ AGENTSH_CORE *Core, _Out_ UINT64 *Sent, _Out_ UINT64 *Dropped,
    _Out_ UINT64 *Failed, _Out_ UINT32 *Queued)
{
    *Sent = AgentshAtomicLoad64(&Core->Notify.Sent);
    *Dropped = AgentshAtomicLoad64(&Core->Notify.Dropped);
    *Failed = AgentshAtomicLoad64(&Core->Notify.SendFailures);
    AgentshLockShared(&Core->Notify.Lock);
    *Queued = Core->Notify.Count;
    AgentshUnlockShared(&Core->Notify.Lock);
}

BOOLEAN AgentshCoreProcessCreated(_Inout_ AGENTSH_CORE *Core, _In_ UINT32 ProcessId, _In_ UINT32 CreatorProcessId,
    _In_ UINT32 ParentProcessId, _In_ const AGENTSH_USTR *ImagePath)
{
    UINT64 token = 0;
    void *msg;
    UINT32 size;
    if (!AgentshSessionProcessCreated(&Core->Sessions, ProcessId, CreatorProcessId, &token)) {
        return FALSE;
    }
    if (NT_SUCCESS(AgentshBuildProcessEvent(MSG_PROCESS_CREATED, token, ProcessId, CreatorProcessId,
                                            ParentProcessId, 0, ImagePath, &msg, &size))) {
        (void)AgentshQueueNotification(Core, msg, size, FALSE);
        AgentshFreeMessage(msg);
    } else {
        AgentshAtomicInc64(&Core->Notify.Dropped);
    }
    return TRUE;
}

BOOLEAN AgentshCoreProcessTerminated(_Inout_ AGENTSH_CORE *Core, _In_ UINT32 ProcessId, _In_ INT32 ExitStatus)
{
    UINT64 token = 0;
    void *msg;
    UINT32 size;
    AGENTSH_USTR none = AGENTSH_USTR_EMPTY;
    if (!AgentshSessionProcessTerminated(&Core->Sessions, ProcessId, &token)) {
        return FALSE;
    }
    if (NT_SUCCESS(AgentshBuildProcessEvent(MSG_PROCESS_TERMINATED, token, ProcessId, 0, 0, ExitStatus, &none,
                                            &msg, &size))) {
        (void)AgentshQueueNotification(Core, msg, size, FALSE);
        AgentshFreeMessage(msg);
    } else {
        AgentshAtomicInc64(&Core->Notify.Dropped);
    }
    return TRUE;
}

BOOLEAN AgentshCoreAuditResultsWanted(_Inout_ AGENTSH_CORE *Core)
{
    UINT32 flags;
    AgentshLockShared(&Core->ConfigLock);
    flags = Core->Config.Flags;
    AgentshUnlockShared(&Core->ConfigLock);
    return (flags & AGENTSH_CONFIG_FLAG_AUDIT_RESULTS) != 0;
}

BOOLEAN AgentshCoreAudit(_Inout_ AGENTSH_CORE *Core, _In_ UINT32 ProcessId, _In_ UINT32 Kind, _In_ UINT32 Operation,
    _In_ INT32 Status, _In_ const AGENTSH_USTR *Path, _In_ const AGENTSH_USTR *ValueName)
{
    UINT64 token = 0;
    void *msg;
    UINT32 size;
    if (!AgentshCoreAuditResultsWanted(Core) || AgentshExclusionContains(&Core->Exclusion, ProcessId) ||
        !AgentshSessionLookupProcess(&Core->Sessions, ProcessId, &token)) {
        return FALSE;
    }
    if (NT_SUCCESS(AgentshBuildAuditEvent(token, ProcessId, Kind, Operation, Status, Path, ValueName, &msg, &size))) {
        (void)AgentshQueueNotification(Core, msg, size, FALSE);
        AgentshFreeMessage(msg);
    } else {
        AgentshAtomicInc64(&Core->Notify.Dropped);
    }
    return TRUE;
}

/* ---------------------------------------------------------------------------------------------
 * Connection
 * ------------------------------------------------------------------------------------------- */
NTSTATUS AgentshCoreValidateConnectContext(_In_reads_bytes_opt_(Size) const void *Context, _In_ UINT32 Size)
{
    AGENTSH_CONNECT_CONTEXT c;
    if (Context == NULL || Size != sizeof(AGENTSH_CONNECT_CONTEXT)) {
        return STATUS_INVALID_PARAMETER;
    }
    AgentshMemCopy(&c, Context, sizeof(c));
    if (c.Magic != AGENTSH_CONNECT_MAGIC || c.Flags != 0) {
        return STATUS_INVALID_PARAMETER;
    }
    if (c.ProtocolVersion != AGENTSH_PROTOCOL_VERSION) {
        return STATUS_REVISION_MISMATCH;
    }
    return STATUS_SUCCESS;
}

void AgentshCoreClientConnected(_Inout_ AGENTSH_CORE *Core, _In_ UINT32 ClientProcessId)
{
    /* A reconnect leaves the fail state and flushes: the new client may run a new policy. */
    (void)AgentshFailReset(&Core->Fail);
    AgentshCacheInvalidateAll(&Core->Cache);
    AgentshAtomicStore32(&Core->ClientProcessId, ClientProcessId);
    AgentshAtomicStore32(&Core->ClientShutdown, 0);
    AgentshAtomicStore32(&Core->ClientConnected, 1);
    AgentshEventSet(&Core->Notify.Wake); /* notifications held while no client was connected */
}

void AgentshCoreClientDisconnected(_Inout_ AGENTSH_CORE *Core)
{
    AgentshAtomicStore32(&Core->ClientConnected, 0);
    AgentshAtomicStore32(&Core->ClientProcessId, 0);
}

void AgentshCoreGetMetrics(_Inout_ AGENTSH_CORE *Core, _Out_ AGENTSH_METRICS *M)
{
    UINT32 sessions, processes, state, consecutive;
    AGENTSH_CORE_CONFIG config;

    AgentshMemZero(M, sizeof(*M));
    M->Header.Type = MSG_METRICS_REPLY;
    M->Header.Size = sizeof(AGENTSH_METRICS);
    M->CacheHitCount = AgentshAtomicLoad64(&Core->Cache.Hits);
    M->CacheMissCount = AgentshAtomicLoad64(&Core->Cache.Misses);
    M->CacheEvictionCount = AgentshAtomicLoad64(&Core->Cache.Evictions);
    M->CacheExpiredCount = AgentshAtomicLoad64(&Core->Cache.Expired);
    M->CacheCollapsedCount = AgentshAtomicLoad64(&Core->Cache.Collapsed);
    M->FilePolicyQueries = AgentshAtomicLoad64(&Core->FileQueries);
    M->RegistryPolicyQueries = AgentshAtomicLoad64(&Core->RegistryQueries);
    M->PolicyQueryTimeouts = AgentshAtomicLoad64(&Core->Timeouts);
    M->PolicyQueryFailures = AgentshAtomicLoad64(&Core->Failures);
    M->AllowDecisions = AgentshAtomicLoad64(&Core->Allow);
    M->DenyDecisions = AgentshAtomicLoad64(&Core->Deny);
    M->PendingDecisions = AgentshAtomicLoad64(&Core->Pending);
    M->FailModeDecisions = AgentshAtomicLoad64(&Core->FailModeDecisions);
    M->FailModeEntries = AgentshAtomicLoad64(&Core->Fail.Entries);
    M->ProbeCount = AgentshAtomicLoad64(&Core->Fail.Probes);
    M->ExcludedOperations = AgentshAtomicLoad64(&Core->ExcludedOps);
    M->CacheEntryCount = AgentshCacheCount(&Core->Cache);
    M->CacheCapacity = AgentshCacheCapacity(&Core->Cache);
    AgentshSessionCounts(&Core->Sessions, &sessions, &processes);
    M->ActiveSessions = sessions;
    M->TrackedProcesses = processes;
    M->ExcludedProcesses = AgentshExclusionCount(&Core->Exclusion);
    AgentshFailSnapshot(&Core->Fail, &state, &consecutive);
    M->ConsecutiveFailures = consecutive;
    M->FailState = state;
    AgentshCoreGetConfig(Core, &config);
    M->FailMode = config.FailMode;
    M->ClientConnected = AgentshAtomicLoad32(&Core->ClientConnected) ? 1u : 0u;
}

UINT32 AgentshCoreGetDecisionCounts(_Inout_ AGENTSH_CORE *Core, _In_ UINT64 RequestId,
    _Out_writes_bytes_(AGENTSH_DECISION_COUNTS_MAX_SIZE) void *Output)
{
    AGENTSH_DECISION_COUNTS head;
    AGENTSH_DECISION_COUNT e;
    UINT8 *out = (UINT8 *)Output;
    UINT32 slot, n = 0;
    UINT64 count;

    for (slot = 0; slot < AGENTSH_DECISION_COUNT_SLOTS; slot++) {
        count = AgentshAtomicLoad64(&Core->DecisionCounts[slot]);
        if (count == 0) {
            continue;
        }
        /* the inverse of AgentshDecisionSlot */
        e.Decision = slot % 2u == 0 ? DECISION_ALLOW : DECISION_DENY;
        e.Operation = (slot / 2u) % 8u;
        e.Kind = (slot / 16u) % 3u;
        e.Source = slot / 48u == 0 ? DECISION_SOURCE_CACHE : DECISION_SOURCE_FAIL_MODE;
        e.Count = count;
        AgentshMemCopy(out + sizeof(head) + (SIZE_T)n * sizeof(e), &e, sizeof(e));
        n++;
    }
    AgentshMemZero(&head, sizeof(head));
    head.Header.Type = MSG_DECISION_COUNTS_REPLY;
    head.Header.Size = (UINT32)sizeof(head) + n * (UINT32)sizeof(e);
    head.Header.RequestId = RequestId;
    head.Count = n;
    AgentshMemCopy(out, &head, sizeof(head));
    return head.Header.Size;
}
