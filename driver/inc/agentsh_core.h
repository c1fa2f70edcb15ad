/*
 * agentsh_core.h - the portable core of agentsh.sys: session + process table, decision cache,
 * fail mode, config, metrics, exclusion, message validation, and the two entry points the kernel
 * glue and the simulator share:
 *
 *   AgentshCoreDecide()    one policy decision (file or registry), cache -> port -> fail mode;
 *   AgentshCoreDispatch()  one user -> driver message (the body of the port's MessageNotify).
 *
 * Locking: every table has its own AGENTSH_LOCK and no core function holds two core locks at once
 * (so there is no lock order to get wrong). No function returns a pointer into a table: lookups copy
 * what the caller needs before the lock is released. The one shared object that outlives a lock,
 * the in-flight query record, is reference counted.
 *
 * Include order: kernel: <fltKernel.h>, "protocol.h", "agentsh_shim.h", "agentsh_core.h";
 * user mode: "agentsh_core.h" (it pulls the others).
 */
#ifndef AGENTSH_CORE_H
#define AGENTSH_CORE_H

#if defined(_KERNEL_MODE)
#include <fltKernel.h> /* before protocol.h, as protocol.h requires in kernel mode */
#endif
#include "protocol.h"
#include "agentsh_shim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Small types
 * ------------------------------------------------------------------------------------------- */

/* A counted UTF-16 string (code units, not bytes), not necessarily NUL-terminated. */
typedef struct _AGENTSH_USTR {
    const UINT16 *Buffer;
    UINT32 Length;
} AGENTSH_USTR;

#define AGENTSH_USTR_EMPTY { NULL, 0 }

/* Where a decision came from (AGENTSH_VERDICT.Source). */
#define AGENTSH_SOURCE_CACHE      0u
#define AGENTSH_SOURCE_BROKER     1u
#define AGENTSH_SOURCE_FAILMODE   2u
#define AGENTSH_SOURCE_EXCLUDED   3u
#define AGENTSH_SOURCE_UNTRACKED  4u

/* Limits of the tables (bounded kernel memory). */
#define AGENTSH_MAX_SESSIONS            4096u
#define AGENTSH_MAX_PROCESSES           65536u
#define AGENTSH_PROCESS_BUCKETS         4096u   /* power of two */
#define AGENTSH_CACHE_MAX_KEY_CHARS     4096u   /* longer keys are decided but never cached */
#define AGENTSH_KEY_INLINE_CHARS        192u    /* 384 bytes of stack per key (kernel stack budget) */
#define AGENTSH_NOTIFY_QUEUE_MAX        4096u   /* queued notifications (process/audit/decision events) */
#define AGENTSH_NOTIFY_QUEUE_MAX_BYTES  (4u * 1024u * 1024u) /* and their bytes (paged pool) */
#define AGENTSH_NOTIFY_TIMEOUT_MS       1000u   /* bounded send of one notification */
/* Decision events do not wake the notification worker one by one: a wake-up cost the deciding
 * thread's cached decision tens of microseconds (simulator: p99 of cached decisions 80-100 us with
 * events, 2.9 us without). The worker sends them once this many notifications are queued, or when
 * its wait ends (AGENTSH_NOTIFY_WAIT_MS in the kernel and the simulator). Process events still wake it. */
#define AGENTSH_NOTIFY_LAZY_BATCH       32u
#define AGENTSH_NOTIFY_WAIT_MS          100u    /* the notification worker's longest wait */
#define AGENTSH_RECLAIM_INTERVAL_MS     1000u   /* the worker removes expired cache entries this often */

/* The port. Kernel: FltSendMessage(Filter, &ClientPort, Message, MessageSize, Reply, ReplyLength,
 * -TimeoutMs). Simulator: its port emulation. Reply == NULL for notifications (no reply expected).
 * On entry *ReplyLength is the reply capacity, on return the bytes received. Returns the NTSTATUS of
 * the send; STATUS_TIMEOUT (a success code) must be returned as is, the core treats it as failure. */
typedef NTSTATUS (*AGENTSH_SEND_FN)(
    _In_opt_ void *Context,
    _In_reads_bytes_(MessageSize) const void *Message,
    _In_ UINT32 MessageSize,
    _Out_writes_bytes_opt_(*ReplyLength) void *Reply,
    _Inout_opt_ UINT32 *ReplyLength,
    _In_ UINT32 TimeoutMs);

typedef UINT64 (*AGENTSH_CLOCK_FN)(_In_opt_ void *Context); /* monotonic milliseconds */

/* Intrusive doubly linked list (portable LIST_ENTRY). */
typedef struct _AGENTSH_LINK {
    struct _AGENTSH_LINK *Next;
    struct _AGENTSH_LINK *Prev;
} AGENTSH_LINK;

/* ---------------------------------------------------------------------------------------------
 * Decision cache (core/ash_cache.c)
 * ------------------------------------------------------------------------------------------- */

/* A cache key: session + kind + operation + up to three case-folded strings
 * (file: Path, RenameDest, -; registry: KeyPath, NewName, ValueName). */
typedef struct _AGENTSH_CACHE_KEY {
    UINT64 SessionToken;
    UINT32 Kind;
    UINT32 Operation;
    UINT64 Hash;
    UINT32 Length[3];
    UINT32 TotalChars;
    UINT16 *Text;       /* Length[0] + Length[1] + Length[2] folded code units: Inline or one allocation */
    UINT16 Inline[AGENTSH_KEY_INLINE_CHARS]; /* short keys need no allocation on the hot path */
} AGENTSH_CACHE_KEY;

typedef struct _AGENTSH_CACHE_ENTRY AGENTSH_CACHE_ENTRY;

/* The answer an owner publishes to the queries waiting on it. */
typedef struct _AGENTSH_INFLIGHT_ANSWER {
    UINT32 Decision;                 /* DECISION_ALLOW / DECISION_DENY */
    UINT32 RawDecision;              /* as answered (PENDING kept) */
    UINT32 Source;                   /* AGENTSH_SOURCE_BROKER or _FAILMODE */
    UINT32 Reason;                   /* DECISION_REASON_* of a fail-mode answer, else 0 */
    NTSTATUS QueryStatus;            /* the owner's query's status when it failed, else 0 */
} AGENTSH_INFLIGHT_ANSWER;

/* An outstanding query other identical queries wait on. Reference counted: the owner holds one
 * reference, every waiter one; the last release frees it. */
typedef struct _AGENTSH_INFLIGHT {
    AGENTSH_LINK Link;               /* Cache.InFlight, while outstanding; guarded by Cache.Lock */
    AGENTSH_CACHE_KEY *Key;          /* the owner's key (valid while linked) */
    volatile UINT32 RefCount;
    UINT64 Generation;               /* cache generation when the query was registered */
    AGENTSH_INFLIGHT_ANSWER Answer;  /* valid once Done is set */
    AGENTSH_EVENT Done;
} AGENTSH_INFLIGHT;

typedef struct _AGENTSH_CACHE {
    AGENTSH_LOCK Lock;
    AGENTSH_CACHE_ENTRY **Buckets;   /* power-of-two array of singly linked chains */
    UINT32 BucketCount;
    UINT32 Capacity;                 /* CacheMaxEntries */
    UINT32 Count;
    UINT64 Generation;               /* bumped by every invalidation: late inserts are dropped */
    AGENTSH_LINK Lru;                /* Next = most recently used */
    AGENTSH_LINK InFlight;
    UINT32 InFlightCount;
    /* counters (atomic) */
    volatile UINT64 Hits, Misses, Evictions, Expired, Collapsed;
} AGENTSH_CACHE;

#define AGENTSH_CACHE_HIT          0
#define AGENTSH_CACHE_MISS_OWNER   1  /* caller must query and then AgentshCacheCompleteQuery */
#define AGENTSH_CACHE_MISS_WAITER  2  /* caller must AgentshCacheWaitQuery */
#define AGENTSH_CACHE_MISS_ALONE   3  /* no in-flight record (allocation failed): just query */

_Must_inspect_result_ NTSTATUS AgentshCacheInit(_Out_ AGENTSH_CACHE *Cache, _In_ UINT32 Capacity);
void AgentshCacheDestroy(_Inout_ AGENTSH_CACHE *Cache);
void AgentshCacheSetCapacity(_Inout_ AGENTSH_CACHE *Cache, _In_ UINT32 Capacity);

_Must_inspect_result_ NTSTATUS AgentshCacheKeyInit(_Out_ AGENTSH_CACHE_KEY *Key, _In_ UINT64 SessionToken,
    _In_ UINT32 Kind, _In_ UINT32 Operation, _In_ const AGENTSH_USTR *S0, _In_ const AGENTSH_USTR *S1,
    _In_ const AGENTSH_USTR *S2);
void AgentshCacheKeyFree(_Inout_ AGENTSH_CACHE_KEY *Key);

/* Lookup; on a miss, atomically joins or creates the in-flight record for the key. */
int AgentshCacheLookupOrJoin(_Inout_ AGENTSH_CACHE *Cache, _In_ AGENTSH_CACHE_KEY *Key, _In_ UINT64 NowMs,
    _Out_ UINT32 *Decision, _Out_ AGENTSH_INFLIGHT **InFlight);
/* Plain lookup (no in-flight join); TRUE on a hit. */
BOOLEAN AgentshCacheLookup(_Inout_ AGENTSH_CACHE *Cache, _In_ AGENTSH_CACHE_KEY *Key, _In_ UINT64 NowMs,
    _Out_ UINT32 *Decision);
/* Insert (or replace) a decision with a TTL (ms, > 0), unless the cache generation moved past
 * Generation (an invalidation happened while the query was outstanding). */
void AgentshCacheInsert(_Inout_ AGENTSH_CACHE *Cache, _In_ const AGENTSH_CACHE_KEY *Key, _In_ UINT32 Decision,
    _In_ UINT32 TtlMs, _In_ UINT64 NowMs, _In_ UINT64 Generation);
UINT64 AgentshCacheGeneration(_Inout_ AGENTSH_CACHE *Cache);
/* Owner: publish the answer, wake waiters, optionally insert (Generation rule as above). */
void AgentshCacheCompleteQuery(_Inout_ AGENTSH_CACHE *Cache, _Inout_ AGENTSH_INFLIGHT *InFlight,
    _In_ const AGENTSH_INFLIGHT_ANSWER *Answer, _In_ BOOLEAN Insert, _In_ UINT32 TtlMs, _In_ UINT64 NowMs,
    _In_ UINT64 Generation);
/* Waiter: TRUE and the owner's answer when it arrived within TimeoutMs (FALSE: Answer zeroed).
 * Releases the reference. */
BOOLEAN AgentshCacheWaitQuery(_Inout_ AGENTSH_INFLIGHT *InFlight, _In_ UINT32 TimeoutMs,
    _Out_ AGENTSH_INFLIGHT_ANSWER *Answer);

void AgentshCacheInvalidateAll(_Inout_ AGENTSH_CACHE *Cache);
void AgentshCacheInvalidateSession(_Inout_ AGENTSH_CACHE *Cache, _In_ UINT64 SessionToken);
/* Kind 0 = any; SessionToken 0 = every session; Prefix matched case-insensitively against the
 * cached path (and, for files, the rename/link destination). */
void AgentshCacheInvalidatePrefix(_Inout_ AGENTSH_CACHE *Cache, _In_ UINT32 Kind, _In_ UINT64 SessionToken,
    _In_ const AGENTSH_USTR *Prefix);
/* Frees up to Max expired entries; returns how many. */
UINT32 AgentshCacheReclaimExpired(_Inout_ AGENTSH_CACHE *Cache, _In_ UINT64 NowMs, _In_ UINT32 Max);
UINT32 AgentshCacheCount(_Inout_ AGENTSH_CACHE *Cache);
UINT32 AgentshCacheCapacity(_Inout_ AGENTSH_CACHE *Cache);
/* Test hook: the key of the LRU position Index (0 = most recent); copies up to Cap units of the
 * first string. Returns FALSE past the end. */
BOOLEAN AgentshCacheDebugLruAt(_Inout_ AGENTSH_CACHE *Cache, _In_ UINT32 Index, _Out_writes_(Cap) UINT16 *Out,
    _In_ UINT32 Cap, _Out_ UINT32 *Length);

/* Case folding used by keys and prefixes (ASCII + core/ash_upcase_table.h). */
UINT16 AgentshUpcase(_In_ UINT16 C);

typedef struct _AGENTSH_UPCASE_RUN {
    UINT16 First;
    UINT16 Last;
    INT32 Delta;
    UINT16 Stride;
} AGENTSH_UPCASE_RUN;

/* ---------------------------------------------------------------------------------------------
 * Session + process table (core/ash_session.c)
 * ------------------------------------------------------------------------------------------- */
typedef struct _AGENTSH_PROCESS_ENTRY AGENTSH_PROCESS_ENTRY;
typedef struct _AGENTSH_SESSION_ENTRY AGENTSH_SESSION_ENTRY;

typedef struct _AGENTSH_SESSION_TABLE {
    AGENTSH_LOCK Lock;
    AGENTSH_PROCESS_ENTRY *Buckets[AGENTSH_PROCESS_BUCKETS];
    AGENTSH_SESSION_ENTRY *Sessions;
    UINT32 SessionCount;
    UINT32 ProcessCount;
} AGENTSH_SESSION_TABLE;

void AgentshSessionInit(_Out_ AGENTSH_SESSION_TABLE *Table);
void AgentshSessionDestroy(_Inout_ AGENTSH_SESSION_TABLE *Table);
_Must_inspect_result_ NTSTATUS AgentshSessionRegister(_Inout_ AGENTSH_SESSION_TABLE *Table, _In_ UINT64 Token,
    _In_ UINT32 RootProcessId, _In_ const AGENTSH_USTR *Workspace);
/* Removes the session and all its processes; STATUS_NOT_FOUND if unknown. */
NTSTATUS AgentshSessionUnregister(_Inout_ AGENTSH_SESSION_TABLE *Table, _In_ UINT64 Token);
/* O(1), shared lock. */
BOOLEAN AgentshSessionLookupProcess(_Inout_ AGENTSH_SESSION_TABLE *Table, _In_ UINT32 ProcessId,
    _Out_opt_ UINT64 *Token);
/* Joins ProcessId to the session of CreatorProcessId (the creating thread's process). TRUE if it
 * joined (then *Token is set). A pid already in the table (reuse without a seen exit) is replaced. */
BOOLEAN AgentshSessionProcessCreated(_Inout_ AGENTSH_SESSION_TABLE *Table, _In_ UINT32 ProcessId,
    _In_ UINT32 CreatorProcessId, _Out_opt_ UINT64 *Token);
BOOLEAN AgentshSessionProcessTerminated(_Inout_ AGENTSH_SESSION_TABLE *Table, _In_ UINT32 ProcessId,
    _Out_opt_ UINT64 *Token);
void AgentshSessionCounts(_Inout_ AGENTSH_SESSION_TABLE *Table, _Out_ UINT32 *Sessions, _Out_ UINT32 *Processes);
/* Copies the session's root pid and process count; FALSE if unknown. */
BOOLEAN AgentshSessionQuery(_Inout_ AGENTSH_SESSION_TABLE *Table, _In_ UINT64 Token, _Out_ UINT32 *RootProcessId,
    _Out_ UINT32 *ProcessCount);

/* ---------------------------------------------------------------------------------------------
 * Exclusion set (core/ash_exclude.c)
 * ------------------------------------------------------------------------------------------- */
typedef struct _AGENTSH_EXCLUSION {
    AGENTSH_LOCK Lock;
    UINT32 Count;
    UINT32 Pids[AGENTSH_MAX_EXCLUDED_PIDS];
} AGENTSH_EXCLUSION;

void AgentshExclusionInit(_Out_ AGENTSH_EXCLUSION *Set);
void AgentshExclusionDestroy(_Inout_ AGENTSH_EXCLUSION *Set);
/* Applies EXCLUDE_ACTION_*; rejects (set unchanged) a result above AGENTSH_MAX_EXCLUDED_PIDS. */
NTSTATUS AgentshExclusionApply(_Inout_ AGENTSH_EXCLUSION *Set, _In_ UINT32 Action,
    _In_reads_(Count) const UINT32 *Pids, _In_ UINT32 Count);
BOOLEAN AgentshExclusionContains(_Inout_ AGENTSH_EXCLUSION *Set, _In_ UINT32 ProcessId);
UINT32 AgentshExclusionCount(_Inout_ AGENTSH_EXCLUSION *Set);

/* ---------------------------------------------------------------------------------------------
 * Fail mode state machine (core/ash_failmode.c)
 * ------------------------------------------------------------------------------------------- */
typedef struct _AGENTSH_FAILSTATE {
    AGENTSH_LOCK Lock;
    UINT32 State;                 /* FAIL_STATE_* */
    UINT32 ConsecutiveFailures;
    UINT64 LastProbeMs;           /* when the last probe was let through (or FAILING entered) */
    BOOLEAN ProbeOutstanding;
    volatile UINT64 Entries;      /* NORMAL -> FAILING */
    volatile UINT64 Probes;
} AGENTSH_FAILSTATE;

#define AGENTSH_GATE_SEND      0  /* NORMAL: send the query */
#define AGENTSH_GATE_PROBE     1  /* FAILING: this query is the probe */
#define AGENTSH_GATE_FAILMODE  2  /* FAILING: answer by fail mode now */

void AgentshFailInit(_Out_ AGENTSH_FAILSTATE *Fail);
void AgentshFailDestroy(_Inout_ AGENTSH_FAILSTATE *Fail);
int AgentshFailGate(_Inout_ AGENTSH_FAILSTATE *Fail, _In_ UINT64 NowMs, _In_ UINT32 ProbeIntervalMs);
/* TRUE when this success left FAILING (the caller flushes the cache). */
BOOLEAN AgentshFailOnSuccess(_Inout_ AGENTSH_FAILSTATE *Fail, _In_ BOOLEAN WasProbe);
/* TRUE when this failure entered FAILING. */
BOOLEAN AgentshFailOnFailure(_Inout_ AGENTSH_FAILSTATE *Fail, _In_ BOOLEAN WasProbe, _In_ UINT64 NowMs,
    _In_ UINT32 MaxConsecutiveFailures);
/* Reconnect: back to NORMAL, counter reset. TRUE if it was FAILING. */
BOOLEAN AgentshFailReset(_Inout_ AGENTSH_FAILSTATE *Fail);
void AgentshFailSnapshot(_Inout_ AGENTSH_FAILSTATE *Fail, _Out_ UINT32 *State, _Out_ UINT32 *Consecutive);

/* ---------------------------------------------------------------------------------------------
 * Configuration (core/ash_config.c)
 * ------------------------------------------------------------------------------------------- */
typedef struct _AGENTSH_CORE_CONFIG {
    UINT32 FailMode;
    UINT32 PolicyQueryTimeoutMs;
    UINT32 MaxConsecutiveFailures;
    UINT32 CacheMaxEntries;
    UINT32 CacheDefaultTTLMs;
    UINT32 CacheMaxTTLMs;
    UINT32 ProbeIntervalMs;
    UINT32 Flags;               /* AGENTSH_CONFIG_FLAG_* */
} AGENTSH_CORE_CONFIG;

void AgentshConfigDefaults(_Out_ AGENTSH_CORE_CONFIG *Config);
/* STATUS_INVALID_PARAMETER unless every field of the message is in range (the whole config). */
NTSTATUS AgentshConfigValidate(_In_ const AGENTSH_CONFIG *Message);

/* ---------------------------------------------------------------------------------------------
 * Notification queue (process, audit and decision events; core/ash_core.c)
 * ------------------------------------------------------------------------------------------- */
typedef struct _AGENTSH_NOTIFY_ITEM AGENTSH_NOTIFY_ITEM;

typedef struct _AGENTSH_NOTIFY_QUEUE {
    AGENTSH_LOCK Lock;
    AGENTSH_NOTIFY_ITEM *Head;
    AGENTSH_NOTIFY_ITEM *Tail;
    UINT32 Count;
    UINT32 Bytes;                    /* message bytes queued (<= AGENTSH_NOTIFY_QUEUE_MAX_BYTES) */
    AGENTSH_EVENT Wake;              /* set when an item other than a decision event is queued with a client
                                      * connected or AGENTSH_NOTIFY_LAZY_BATCH are queued, at connect, at stop */
    volatile UINT32 Stopping;
    volatile UINT64 Sent, Dropped, SendFailures;
    /* decision events (guarded by Lock): the rate window and the events left out since the last
     * one queued (carried by the next as Suppressed) */
    UINT64 DecisionWindowMs;
    UINT32 DecisionWindowCount;
    UINT32 DecisionSuppressed;
    UINT64 ReclaimedMs;              /* the worker's last removal of expired cache entries (its own) */
} AGENTSH_NOTIFY_QUEUE;

/* ---------------------------------------------------------------------------------------------
 * The core instance
 * ------------------------------------------------------------------------------------------- */
typedef struct _AGENTSH_CORE {
    AGENTSH_LOCK ConfigLock;
    AGENTSH_CORE_CONFIG Config;

    AGENTSH_SESSION_TABLE Sessions;
    AGENTSH_CACHE Cache;
    AGENTSH_FAILSTATE Fail;
    AGENTSH_EXCLUSION Exclusion;
    AGENTSH_NOTIFY_QUEUE Notify;

    AGENTSH_SEND_FN Send;
    void *SendContext;
    AGENTSH_CLOCK_FN Clock;
    void *ClockContext;

    volatile UINT32 ClientConnected;
    volatile UINT32 ClientProcessId;
    volatile UINT32 ClientShutdown;  /* MSG_SHUTDOWN received: answer by fail mode until reconnect */
    volatile UINT64 NextRequestId;

    /* counters not owned by a table (atomic) */
    volatile UINT64 FileQueries, RegistryQueries, Timeouts, Failures;
    volatile UINT64 Allow, Deny, Pending, FailModeDecisions, ExcludedOps;
    /* the decisions made without an answer of their own, by slot (AgentshDecisionSlot) */
    volatile UINT64 DecisionCounts[AGENTSH_DECISION_COUNT_SLOTS];
} AGENTSH_CORE;

/* Init with the default config. Send may be NULL (then no client is ever reachable). Clock may be
 * NULL (AgentshMonotonicMs). */
_Must_inspect_result_ NTSTATUS AgentshCoreInit(_Out_ AGENTSH_CORE *Core, _In_opt_ AGENTSH_SEND_FN Send,
    _In_opt_ void *SendContext, _In_opt_ AGENTSH_CLOCK_FN Clock, _In_opt_ void *ClockContext);
void AgentshCoreDestroy(_Inout_ AGENTSH_CORE *Core);
UINT64 AgentshCoreNow(_In_ AGENTSH_CORE *Core);
void AgentshCoreGetConfig(_Inout_ AGENTSH_CORE *Core, _Out_ AGENTSH_CORE_CONFIG *Config);

/* One policy decision. Kind selects the meaning of the fields:
 *   file:     Operation FILE_OP_*, Strings = Path, RenameDest, Volume
 *   registry: Operation REG_OP_*,  Strings = KeyPath, ValueName, NewName */
typedef struct _AGENTSH_DECIDE_REQUEST {
    UINT32 Kind;                 /* AGENTSH_KIND_FILE or AGENTSH_KIND_REGISTRY */
    UINT32 ProcessId;
    UINT32 ThreadId;
    UINT32 Operation;
    UINT32 CreateDisposition;    /* file */
    UINT32 DesiredAccess;        /* file */
    UINT32 Flags;                /* file: FILE_REQ_FLAG_* */
    UINT32 ValueType;            /* registry */
    UINT32 DataSize;             /* registry */
    AGENTSH_USTR Strings[3];
} AGENTSH_DECIDE_REQUEST;

typedef struct _AGENTSH_VERDICT {
    UINT32 Decision;             /* DECISION_ALLOW or DECISION_DENY: what to enforce */
    UINT32 RawDecision;          /* the broker's answer (DECISION_PENDING kept) or Decision */
    UINT32 Source;               /* AGENTSH_SOURCE_* */
    UINT32 Collapsed;            /* 1 when this query waited on an identical in-flight one */
    UINT64 SessionToken;         /* 0 when untracked */
    NTSTATUS QueryStatus;        /* the send's status when the broker was asked, else 0 */
    UINT32 Reason;               /* DECISION_REASON_* when decided without an answer of its own, else 0 */
    UINT32 Reported;             /* 1 when a MSG_DECISION_EVENT was queued for this decision */
} AGENTSH_VERDICT;

/* Never fails: an invalid request or an allocation failure is answered by the fail mode. */
void AgentshCoreDecide(_Inout_ AGENTSH_CORE *Core, _In_ const AGENTSH_DECIDE_REQUEST *Request,
    _Out_ AGENTSH_VERDICT *Verdict);

/* Fast pre-check for the glue (before it pays for a name query): TRUE if operations of ProcessId
 * must be decided (tracked and not excluded). Counts excluded operations. */
BOOLEAN AgentshCoreShouldCheck(_Inout_ AGENTSH_CORE *Core, _In_ UINT32 ProcessId, _Out_opt_ UINT64 *Token);

/* Process notifications (PsSetCreateProcessNotifyRoutineEx). Return TRUE if the process is (was)
 * tracked; then a MSG_PROCESS_* notification is queued for the client. */
BOOLEAN AgentshCoreProcessCreated(_Inout_ AGENTSH_CORE *Core, _In_ UINT32 ProcessId, _In_ UINT32 CreatorProcessId,
    _In_ UINT32 ParentProcessId, _In_ const AGENTSH_USTR *ImagePath);
BOOLEAN AgentshCoreProcessTerminated(_Inout_ AGENTSH_CORE *Core, _In_ UINT32 ProcessId, _In_ INT32 ExitStatus);
/* The config asks for the outcomes of registry operations (AGENTSH_CONFIG_FLAG_AUDIT_RESULTS): the
 * kernel's post-operation callback checks this before it looks up the key's name. */
BOOLEAN AgentshCoreAuditResultsWanted(_Inout_ AGENTSH_CORE *Core);
/* Post-operation record (MSG_AUDIT_EVENT) for a tracked process, when the config asks for them
 * (AGENTSH_CONFIG_FLAG_AUDIT_RESULTS); FALSE when nothing was queued. */
BOOLEAN AgentshCoreAudit(_Inout_ AGENTSH_CORE *Core, _In_ UINT32 ProcessId, _In_ UINT32 Kind, _In_ UINT32 Operation,
    _In_ INT32 Status, _In_ const AGENTSH_USTR *Path, _In_ const AGENTSH_USTR *ValueName);

/* Worker body: waits up to WaitMs for queued notifications, sends them (bounded timeout each).
 * Also reclaims expired cache entries. Returns FALSE once AgentshCoreStopNotifications was called. */
BOOLEAN AgentshCoreRunNotifications(_Inout_ AGENTSH_CORE *Core, _In_ UINT32 WaitMs);
void AgentshCoreStopNotifications(_Inout_ AGENTSH_CORE *Core);
void AgentshCoreNotifyStats(_Inout_ AGENTSH_CORE *Core, _Out_ UINT64 *Sent, _Out_ UINT64 *Dropped,
    _Out_ UINT64 *Failed, _Out_ UINT32 *Queued);

/* Connection (the port's ConnectNotify / DisconnectNotify). */
NTSTATUS AgentshCoreValidateConnectContext(_In_reads_bytes_opt_(Size) const void *Context, _In_ UINT32 Size);
void AgentshCoreClientConnected(_Inout_ AGENTSH_CORE *Core, _In_ UINT32 ClientProcessId);
void AgentshCoreClientDisconnected(_Inout_ AGENTSH_CORE *Core);

/* One user -> driver message. Input must be a private copy (the kernel glue captures the user
 * buffer first). Returns the NTSTATUS for FilterSendMessage. */
NTSTATUS AgentshCoreDispatch(_Inout_ AGENTSH_CORE *Core,
    _In_reads_bytes_(InputLength) const void *Input, _In_ UINT32 InputLength,
    _Out_writes_bytes_to_opt_(OutputLength, *ReturnOutputLength) void *Output, _In_ UINT32 OutputLength,
    _Out_ UINT32 *ReturnOutputLength);

void AgentshCoreGetMetrics(_Inout_ AGENTSH_CORE *Core, _Out_ AGENTSH_METRICS *Metrics);
/* MSG_DECISION_COUNTS_REPLY into Output (OutputLength >= AGENTSH_DECISION_COUNTS_MAX_SIZE); returns
 * its size. */
UINT32 AgentshCoreGetDecisionCounts(_Inout_ AGENTSH_CORE *Core, _In_ UINT64 RequestId,
    _Out_writes_bytes_(AGENTSH_DECISION_COUNTS_MAX_SIZE) void *Output);

/* ---------------------------------------------------------------------------------------------
 * Message validation and building (core/ash_validate.c, core/ash_message.c)
 * ------------------------------------------------------------------------------------------- */
/* Validates any message of protocol.h against the Size and String rules. BufferLength = bytes
 * available (Size must not exceed it). On success *Type = Header.Type. Never reads outside. */
NTSTATUS AgentshValidateMessage(_In_reads_bytes_(BufferLength) const void *Buffer, _In_ UINT32 BufferLength,
    _Out_opt_ UINT32 *Type);
/* String rules for one AGENTSH_STRING of a message of Size bytes whose fixed part is FixedSize. */
BOOLEAN AgentshValidateString(_In_reads_bytes_(Size) const UINT8 *Message, _In_ UINT32 Size,
    _In_ UINT32 FixedSize, _In_ const AGENTSH_STRING *String);
/* A reply payload (after FILTER_REPLY_HEADER) of ReplyLength bytes for request RequestId. */
NTSTATUS AgentshValidateReply(_In_reads_bytes_(ReplyLength) const void *Reply, _In_ UINT32 ReplyLength,
    _In_ UINT64 RequestId, _Out_ UINT32 *Decision, _Out_ UINT32 *CacheTTLMs);
/* View of a validated string (Buffer points into Message; Message must be 2-byte aligned). */
AGENTSH_USTR AgentshMessageString(_In_ const void *Message, _In_ const AGENTSH_STRING *String);

/* Build messages (allocated with AGENTSH_TAG_MESSAGE; free with AgentshFreeMessage). */
_Must_inspect_result_ NTSTATUS AgentshBuildPolicyRequest(_In_ const AGENTSH_DECIDE_REQUEST *Request,
    _In_ UINT64 SessionToken, _In_ UINT64 RequestId, _Out_ void **Message, _Out_ UINT32 *Size);
_Must_inspect_result_ NTSTATUS AgentshBuildProcessEvent(_In_ UINT32 Type, _In_ UINT64 SessionToken,
    _In_ UINT32 ProcessId, _In_ UINT32 CreatorProcessId, _In_ UINT32 ParentProcessId, _In_ INT32 ExitStatus,
    _In_ const AGENTSH_USTR *ImagePath, _Out_ void **Message, _Out_ UINT32 *Size);
_Must_inspect_result_ NTSTATUS AgentshBuildAuditEvent(_In_ UINT64 SessionToken, _In_ UINT32 ProcessId,
    _In_ UINT32 Kind, _In_ UINT32 Operation, _In_ INT32 Status, _In_ const AGENTSH_USTR *Path,
    _In_ const AGENTSH_USTR *ValueName, _Out_ void **Message, _Out_ UINT32 *Size);
/* MSG_DECISION_EVENT for a decision made without asking (strings as in Request). */
_Must_inspect_result_ NTSTATUS AgentshBuildDecisionEvent(_In_ const AGENTSH_DECIDE_REQUEST *Request,
    _In_ UINT64 SessionToken, _In_ UINT32 Decision, _In_ UINT32 Source, _In_ UINT32 Reason,
    _In_ NTSTATUS QueryStatus, _In_ UINT32 Suppressed, _Out_ void **Message, _Out_ UINT32 *Size);
void AgentshFreeMessage(_In_ void *Message);

/* List helpers */
AGENTSH_INLINE void AgentshLinkInit(AGENTSH_LINK *Head) { Head->Next = Head; Head->Prev = Head; }
AGENTSH_INLINE BOOLEAN AgentshLinkEmpty(const AGENTSH_LINK *Head) { return Head->Next == Head; }
AGENTSH_INLINE void AgentshLinkRemove(AGENTSH_LINK *E)
{
    E->Prev->Next = E->Next;
    E->Next->Prev = E->Prev;
    E->Next = E->Prev = E;
}
AGENTSH_INLINE void AgentshLinkInsertHead(AGENTSH_LINK *Head, AGENTSH_LINK *E)
{
    E->Next = Head->Next;
    E->Prev = Head;
    Head->Next->Prev = E;
    Head->Next = E;
}
#if defined(_KERNEL_MODE)
#define AGENTSH_CONTAINING(p, T, f) CONTAINING_RECORD((p), T, f)
#else
#define AGENTSH_CONTAINING(p, T, f) ((T *)((unsigned char *)(p) - offsetof(T, f)))
#endif

#ifdef __cplusplus
}
#endif

#endif /* AGENTSH_CORE_H */
