/*
 * protocol.h - the kernel/user wire format of agentsh-win.
 *
 * One source of truth, shared by the minifilter (kernel), the simulator (driver/sim, user mode on
 * Linux) and, through a codec that a test checks against this header's C layout, the broker
 * (TypeScript). It compiles as C with gcc (user mode, through fixed-width typedefs), with
 * x86_64-w64-mingw32-gcc against the real Windows headers, and with MSVC/WDK. Every struct's size
 * and every field's offset is pinned by a static assertion at the end of this file, so all builds
 * agree on the x64 layout or fail to compile.
 *
 * Facts from the design documents (seeds) that carry over unchanged:
 *   - message numbers 1..4 (driver -> user) and 100..106 (user -> driver),
 *   - the 16-byte message header {Type, Size, RequestId},
 *   - decisions ALLOW=0 / DENY=1 / PENDING=2, fail modes OPEN=0 / CLOSED=1,
 *   - file operations CREATE=1 READ=2 WRITE=3 DELETE=4 RENAME=5,
 *   - config ranges and defaults (see AGENTSH_CONFIG_*).
 *
 * Where this header improves on the seeds (and why):
 *   1. Fixed-width fields only (UINT32/UINT64), never C enums or BOOLEAN inside structs: the size of
 *      an enum is compiler-dependent and BOOLEAN left 3 bytes of hidden padding in the seeds'
 *      metrics struct. Enum values are plain constants below.
 *   2. Every header carries Size = total bytes of the message including the header. A receiver
 *      rejects a message whose Size is below the fixed size of its type, above the bytes it
 *      actually received, or not equal to what the type allows (see "Size rules").
 *   3. Strings are counted UTF-16LE, stored after the fixed part and referenced by
 *      AGENTSH_STRING {Offset, Length}; see "String rules". The seeds' fixed WCHAR[MAX_PATH]
 *      arrays truncated long NT paths silently and put kilobytes on the kernel stack.
 *   4. A protocol version is exchanged at connect: the connection context (AGENTSH_CONNECT_CONTEXT)
 *      carries magic, version and the client's pid; the driver refuses other versions. PING/PONG
 *      report the version again at run time.
 *   5. A file request carries the volume name and the rename (or hard-link) destination, so the
 *      broker can map \Device\HarddiskVolumeN to a drive letter and the cache key includes the
 *      destination (the seeds dropped it: "TODO: Extract rename destination").
 *   6. UPDATE_CACHE can invalidate everything, one session, or a path prefix (optionally for one
 *      session and one kind). EXCLUDE_PROCESS carries up to AGENTSH_MAX_EXCLUDED_PIDS pids and
 *      adds, removes or replaces the set (the seeds had one global excluded pid).
 *   7. Counters in the metrics reply are 64-bit (the seeds' ULONG counters wrap on a busy host) and
 *      include evictions, expiries, collapsed queries, probes, fail-mode entries and the current
 *      fail state. Config gains CacheMaxTTLMs (cap on a reply's TTL) and ProbeIntervalMs (how often
 *      one query is let through while failing), so fail mode is never sticky.
 *   8. A reply TTL of 0 means "do not cache"; AGENTSH_TTL_DEFAULT asks for CacheDefaultTTLMs. A
 *      PENDING reply is never cached, and the driver denies the operation it answers.
 *   9. MSG_DECISION_EVENT (6) reports what the driver decided alone and is not a plain allowed
 *      cache hit (a DENY from its cache, every fail-mode answer), when the config asks
 *      (AGENTSH_CONFIG_FLAG_DECISION_EVENTS): otherwise those decisions leave no audit record.
 *
 * Framing on the filter port (Windows rules, emulated by the simulator):
 *   - driver -> user (FltSendMessage / FilterGetMessage): the user buffer receives
 *     FILTER_MESSAGE_HEADER (16 bytes: ReplyLength, MessageId) followed by one message below.
 *     ReplyLength 0 means the driver expects no reply (notifications: PROCESS_*, AUDIT_EVENT,
 *     DECISION_EVENT).
 *   - user -> driver reply (FilterReplyMessage): FILTER_REPLY_HEADER (16 bytes: Status,
 *     MessageId) followed by AGENTSH_POLICY_RESPONSE; dwReplyBufferSize = 16 + 32. The driver
 *     passes ReplyLength = sizeof(AGENTSH_POLICY_RESPONSE) to FltSendMessage.
 *   - user -> driver commands (FilterSendMessage): one message below as the input buffer; the
 *     output buffer receives METRICS_REPLY (for GET_METRICS), DECISION_COUNTS_REPLY (for
 *     GET_DECISION_COUNTS) or PONG (for PING); the HRESULT is
 *     fltlib's mapping of the command's NTSTATUS, HRESULT_FROM_WIN32(RtlNtStatusToDosError(status)),
 *     e.g. 0x80070057 for a config rejected with STATUS_INVALID_PARAMETER.
 *   - a FilterGetMessage buffer of AGENTSH_PORT_BUFFER_SIZE bytes holds any message.
 *
 * Size rules (checked by the driver core, the simulator and the TypeScript codec alike):
 *   - Size >= sizeof(AGENTSH_MESSAGE_HEADER) and Size <= AGENTSH_MAX_MESSAGE_SIZE.
 *   - Size equals the bytes of the message; a receiver that only knows its buffer's capacity
 *     (synchronous FilterGetMessage) checks Size <= capacity and then reads Size bytes. The driver,
 *     which knows the input length of FilterSendMessage, ignores bytes after Size.
 *   - Fixed-size types: Size == sizeof(type). Types with strings: Size >= sizeof(type) and every
 *     string lies inside Size. EXCLUDE_PROCESS: Size == 24 + 4 * Count. DECISION_COUNTS_REPLY:
 *     Size == 24 + 24 * Count, Count <= AGENTSH_DECISION_COUNT_SLOTS.
 *
 * String rules (AGENTSH_STRING):
 *   - Length is in UTF-16 code units, without the terminating NUL. Length == 0 and Offset == 0
 *     means absent/empty. Otherwise Offset is a byte offset from the start of the message
 *     (header included), even, >= the fixed size of the type, and
 *     Offset + 2 * (Length + 1) <= Size; the code unit at index Length is NUL (0x0000).
 *   - Length <= AGENTSH_MAX_STRING_CHARS (32767, the most a UNICODE_STRING can hold).
 *   - Code units inside Length may be any value except that the text must be well-formed UTF-16
 *     (no unpaired surrogate); an ill-formed string makes the whole message malformed. A NUL
 *     inside Length is allowed on the wire (registry names can contain one; the policy server
 *     denies such names as uncanonicalisable) and is never treated as the end of the string.
 */
#ifndef AGENTSH_PROTOCOL_H
#define AGENTSH_PROTOCOL_H

#if defined(_KERNEL_MODE)
/* Kernel: include <fltKernel.h> first (it brings basetsd.h and fltUserStructures.h). */
#define AGENTSH_OFFSETOF(t, f) ((UINT32)FIELD_OFFSET(t, f))
#elif defined(_WIN32)
/* Windows user mode: UINT16/UINT32/UINT64/INT32 from basetsd.h, the port headers from fltuser.h. */
#include <windows.h>
#include <fltuser.h>
#include <stddef.h>
#else
/* Linux/CI: the same layout through fixed-width typedefs. */
#include <stddef.h>
#include <stdint.h>
typedef uint16_t UINT16;
typedef uint32_t UINT32;
typedef uint64_t UINT64;
typedef int32_t INT32;

/* Same layout as fltUserStructures.h (LLP64: ULONG is 4 bytes, ULONGLONG 8, NTSTATUS 4). */
typedef struct _FILTER_MESSAGE_HEADER {
    UINT32 ReplyLength;
    UINT32 Padding_; /* implicit alignment padding in the Windows definition */
    UINT64 MessageId;
} FILTER_MESSAGE_HEADER, *PFILTER_MESSAGE_HEADER;

typedef struct _FILTER_REPLY_HEADER {
    INT32 Status;
    UINT32 Padding_; /* implicit alignment padding in the Windows definition */
    UINT64 MessageId;
} FILTER_REPLY_HEADER, *PFILTER_REPLY_HEADER;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Port, version, limits
 * ------------------------------------------------------------------------------------------- */
#define AGENTSH_PORT_NAME               L"\\AgentshPort"
#define AGENTSH_PROTOCOL_VERSION        1u
#define AGENTSH_CONNECT_MAGIC           0x48534741u /* 'AGSH' little-endian */

#define AGENTSH_MAX_STRING_CHARS        32767u
/* Largest message: a file request with three strings of the maximum length, rounded up. */
#define AGENTSH_MAX_MESSAGE_SIZE        (256u * 1024u)
#define AGENTSH_MAX_EXCLUDED_PIDS       64u
/* FILTER_MESSAGE_HEADER + the largest message: the buffer FilterGetMessage needs. */
#define AGENTSH_PORT_BUFFER_SIZE        (16u + AGENTSH_MAX_MESSAGE_SIZE)

/* ---------------------------------------------------------------------------------------------
 * Message types (AGENTSH_MESSAGE_HEADER.Type)
 * ------------------------------------------------------------------------------------------- */
/* driver -> user (FltSendMessage); 1 and 2 expect an AGENTSH_POLICY_RESPONSE reply */
#define MSG_POLICY_CHECK_FILE           1u
#define MSG_POLICY_CHECK_REGISTRY       2u
#define MSG_PROCESS_CREATED             3u
#define MSG_PROCESS_TERMINATED          4u
#define MSG_AUDIT_EVENT                 5u   /* post-operation record (registry), no reply */
#define MSG_DECISION_EVENT              6u   /* a decision the driver made without asking, no reply */

/* user -> driver (FilterSendMessage) */
#define MSG_REGISTER_SESSION            100u
#define MSG_UNREGISTER_SESSION          101u
#define MSG_UPDATE_CACHE                102u
#define MSG_SHUTDOWN                    103u
#define MSG_SET_CONFIG                  104u
#define MSG_GET_METRICS                 105u
#define MSG_METRICS_REPLY               106u /* driver -> user, output buffer of GET_METRICS */
#define MSG_EXCLUDE_PROCESS             107u
#define MSG_PING                        108u
#define MSG_PONG                        109u /* driver -> user, output buffer of PING */
#define MSG_POLICY_RESPONSE             110u /* user -> driver, FilterReplyMessage payload */
#define MSG_GET_DECISION_COUNTS         111u
#define MSG_DECISION_COUNTS_REPLY       112u /* driver -> user, output buffer of GET_DECISION_COUNTS */

/* ---------------------------------------------------------------------------------------------
 * Enumerations (stored in UINT32 fields)
 * ------------------------------------------------------------------------------------------- */
/* AGENTSH_POLICY_RESPONSE.Decision */
#define DECISION_ALLOW                  0u
#define DECISION_DENY                   1u
#define DECISION_PENDING                2u   /* approval outstanding: denied now, never cached */

/* AGENTSH_CONFIG.FailMode */
#define FAIL_MODE_OPEN                  0u   /* allow operations when the broker cannot answer */
#define FAIL_MODE_CLOSED                1u   /* deny operations when the broker cannot answer */

/* kinds (cache keys, UPDATE_CACHE, AUDIT_EVENT) */
#define AGENTSH_KIND_ANY                0u
#define AGENTSH_KIND_FILE               1u
#define AGENTSH_KIND_REGISTRY           2u

/* AGENTSH_FILE_REQUEST.Operation */
#define FILE_OP_CREATE                  1u
#define FILE_OP_READ                    2u
#define FILE_OP_WRITE                   3u
#define FILE_OP_DELETE                  4u
#define FILE_OP_RENAME                  5u
#define FILE_OP_LINK                    6u   /* hard link: Path is the source, RenameDest the new name */

/* AGENTSH_REGISTRY_REQUEST.Operation */
#define REG_OP_CREATE_KEY               1u
#define REG_OP_OPEN_KEY                 2u
#define REG_OP_SET_VALUE                3u
#define REG_OP_DELETE_KEY               4u
#define REG_OP_DELETE_VALUE             5u
#define REG_OP_RENAME_KEY               6u
#define REG_OP_QUERY_VALUE              7u

/* AGENTSH_FILE_REQUEST.Flags */
#define FILE_REQ_FLAG_DIRECTORY         0x00000001u
#define FILE_REQ_FLAG_DELETE_ON_CLOSE   0x00000002u
#define FILE_REQ_FLAG_REPLACE_IF_EXISTS 0x00000004u

/* AGENTSH_DECISION_EVENT.Source: how the driver decided without asking the client */
#define DECISION_SOURCE_CACHE           1u   /* the cache or an identical query in flight answered (a
                                                * DECISION_EVENT reports only its denials) */
#define DECISION_SOURCE_FAIL_MODE       2u   /* the configured fail mode answered (allow or deny) */

/* AGENTSH_DECISION_EVENT.Reason */
#define DECISION_REASON_CACHED          1u   /* cache hit (Source CACHE) */
#define DECISION_REASON_COLLAPSED       2u   /* took the broker's answer to an identical in-flight query
                                                * (the fail mode's answer to it keeps its own reason) */
#define DECISION_REASON_NO_CLIENT       3u   /* no client connected, or it sent MSG_SHUTDOWN */
#define DECISION_REASON_FAILING         4u   /* FAIL_STATE_FAILING and this query was not the probe */
#define DECISION_REASON_QUERY_FAILED    5u   /* the query failed: QueryStatus (STATUS_TIMEOUT, ...) */
#define DECISION_REASON_WAIT_TIMEOUT    6u   /* the identical query waited on did not answer in time */
#define DECISION_REASON_UNDECIDABLE     7u   /* the request could not be keyed or built: QueryStatus */

/* AGENTSH_CACHE_UPDATE.Scope */
#define CACHE_SCOPE_ALL                 0u
#define CACHE_SCOPE_SESSION             1u
#define CACHE_SCOPE_PATH_PREFIX         2u

/* AGENTSH_EXCLUDE_PROCESS.Action */
#define EXCLUDE_ACTION_ADD              0u
#define EXCLUDE_ACTION_REMOVE           1u
#define EXCLUDE_ACTION_REPLACE          2u   /* the set becomes exactly ProcessIds (Count may be 0) */

/* AGENTSH_METRICS.FailState */
#define FAIL_STATE_NORMAL               0u
#define FAIL_STATE_FAILING              1u   /* answering by fail mode, probing at ProbeIntervalMs */

/* AGENTSH_POLICY_RESPONSE.CacheTTLMs */
#define AGENTSH_TTL_NO_CACHE            0u
#define AGENTSH_TTL_DEFAULT             0xFFFFFFFFu /* use CacheDefaultTTLMs */

/* ---------------------------------------------------------------------------------------------
 * Configuration ranges and defaults (the seeds' ranges; CacheMaxTTLMs and ProbeIntervalMs added)
 * ------------------------------------------------------------------------------------------- */
#define AGENTSH_CONFIG_TIMEOUT_MIN_MS           100u
#define AGENTSH_CONFIG_TIMEOUT_MAX_MS           60000u
#define AGENTSH_CONFIG_TIMEOUT_DEFAULT_MS       5000u
#define AGENTSH_CONFIG_MAX_FAILURES_MIN         1u
#define AGENTSH_CONFIG_MAX_FAILURES_MAX         1000u
#define AGENTSH_CONFIG_MAX_FAILURES_DEFAULT     10u
#define AGENTSH_CONFIG_CACHE_ENTRIES_MIN        100u
#define AGENTSH_CONFIG_CACHE_ENTRIES_MAX        100000u
#define AGENTSH_CONFIG_CACHE_ENTRIES_DEFAULT    4096u
#define AGENTSH_CONFIG_CACHE_TTL_MIN_MS         100u
#define AGENTSH_CONFIG_CACHE_TTL_MAX_MS         3600000u
#define AGENTSH_CONFIG_CACHE_TTL_DEFAULT_MS     5000u
#define AGENTSH_CONFIG_CACHE_MAX_TTL_DEFAULT_MS 3600000u /* same range as the default TTL */
#define AGENTSH_CONFIG_PROBE_MIN_MS             100u
#define AGENTSH_CONFIG_PROBE_MAX_MS             60000u
#define AGENTSH_CONFIG_PROBE_DEFAULT_MS         1000u
#define AGENTSH_CONFIG_DEFAULT_FAIL_MODE        FAIL_MODE_OPEN
/* AGENTSH_CONFIG.Flags. AUDIT_RESULTS: send MSG_AUDIT_EVENT with the outcome (NTSTATUS) of every
 * filtered registry operation. Off by default: every decision already reaches the broker's audit log,
 * and the outcomes double the driver's messages for registry work; a site that wants them asks. */
#define AGENTSH_CONFIG_FLAG_AUDIT_RESULTS       0x00000001u
/* DECISION_EVENTS: send MSG_DECISION_EVENT for every decision of a tracked process the driver makes
 * without asking the client and that is not a plain allowed cache hit: a DENY repeated from the
 * cache (or from an identical in-flight query) and every fail-mode answer. Without them those
 * decisions have no audit record. At most AGENTSH_DECISION_EVENTS_PER_SECOND are queued in one
 * window of a second; the next event queued carries the count of those left out (Suppressed), and
 * of those lost on the way (full queue, failed send). While no client is connected the events are
 * still queued (bounded by the notification queue's count and bytes), as are the notifications
 * queued before the disconnect, and the next client gets them, possibly before its own SET_CONFIG.
 * Off by default, so a driver that never had a client asking for them sends none; the broker asks
 * unless configured otherwise. */
#define AGENTSH_CONFIG_FLAG_DECISION_EVENTS     0x00000002u
#define AGENTSH_CONFIG_FLAGS_VALID              0x00000003u
#define AGENTSH_CONFIG_DEFAULT_FLAGS            0u
#define AGENTSH_DECISION_EVENTS_PER_SECOND      1000u

/* ---------------------------------------------------------------------------------------------
 * Structures. All little-endian, naturally aligned, no implicit padding (asserted below).
 * ------------------------------------------------------------------------------------------- */

/* Passed as the context of FilterConnectCommunicationPort (16 bytes). */
typedef struct _AGENTSH_CONNECT_CONTEXT {
    UINT32 Magic;               /* AGENTSH_CONNECT_MAGIC */
    UINT32 ProtocolVersion;     /* AGENTSH_PROTOCOL_VERSION */
    UINT32 ClientProcessId;     /* the broker; the driver also reads it from the connecting process */
    UINT32 Flags;               /* reserved, 0 */
} AGENTSH_CONNECT_CONTEXT, *PAGENTSH_CONNECT_CONTEXT;

typedef struct _AGENTSH_MESSAGE_HEADER {
    UINT32 Type;                /* MSG_* */
    UINT32 Size;                /* bytes of the whole message, this header included */
    UINT64 RequestId;           /* driver-assigned for requests; echoed in the response */
} AGENTSH_MESSAGE_HEADER, *PAGENTSH_MESSAGE_HEADER;

typedef struct _AGENTSH_STRING {
    UINT32 Offset;              /* bytes from the start of the message; 0 when absent */
    UINT32 Length;              /* UTF-16 code units, excluding the terminating NUL */
} AGENTSH_STRING, *PAGENTSH_STRING;

/* MSG_POLICY_CHECK_FILE (driver -> user), 72 bytes + strings */
typedef struct _AGENTSH_FILE_REQUEST {
    AGENTSH_MESSAGE_HEADER Header;
    UINT64 SessionToken;
    UINT32 ProcessId;
    UINT32 ThreadId;
    UINT32 Operation;           /* FILE_OP_* */
    UINT32 CreateDisposition;   /* FILE_SUPERSEDE..FILE_OVERWRITE_IF for creates, else 0 */
    UINT32 DesiredAccess;       /* ACCESS_MASK of the open */
    UINT32 Flags;               /* FILE_REQ_FLAG_* */
    AGENTSH_STRING Path;        /* normalized NT name, e.g. \Device\HarddiskVolume3\src\a.c */
    AGENTSH_STRING RenameDest;  /* FILE_OP_RENAME / FILE_OP_LINK: the destination NT name */
    AGENTSH_STRING Volume;      /* the volume part of Path, e.g. \Device\HarddiskVolume3 */
} AGENTSH_FILE_REQUEST, *PAGENTSH_FILE_REQUEST;

/* MSG_POLICY_CHECK_REGISTRY (driver -> user), 72 bytes + strings */
typedef struct _AGENTSH_REGISTRY_REQUEST {
    AGENTSH_MESSAGE_HEADER Header;
    UINT64 SessionToken;
    UINT32 ProcessId;
    UINT32 ThreadId;
    UINT32 Operation;           /* REG_OP_* */
    UINT32 ValueType;           /* REG_SZ, REG_DWORD, ... for SET_VALUE, else 0 */
    UINT32 DataSize;            /* bytes of value data for SET_VALUE, else 0 */
    UINT32 Reserved;
    AGENTSH_STRING KeyPath;     /* full key name, e.g. \REGISTRY\MACHINE\SOFTWARE\... */
    AGENTSH_STRING ValueName;   /* SET_VALUE / DELETE_VALUE / QUERY_VALUE */
    AGENTSH_STRING NewName;     /* RENAME_KEY: the new last component */
} AGENTSH_REGISTRY_REQUEST, *PAGENTSH_REGISTRY_REQUEST;

/* MSG_PROCESS_CREATED / MSG_PROCESS_TERMINATED (driver -> user, no reply), 48 bytes + strings */
typedef struct _AGENTSH_PROCESS_EVENT {
    AGENTSH_MESSAGE_HEADER Header;
    UINT64 SessionToken;
    UINT32 ProcessId;
    UINT32 CreatorProcessId;    /* process of the creating thread: what session membership uses */
    UINT32 ParentProcessId;     /* as reported by the process (spoofable; informational only) */
    INT32 ExitStatus;           /* TERMINATED only */
    AGENTSH_STRING ImagePath;   /* CREATED only */
} AGENTSH_PROCESS_EVENT, *PAGENTSH_PROCESS_EVENT;

/* MSG_AUDIT_EVENT (driver -> user, no reply), 56 bytes + strings */
typedef struct _AGENTSH_AUDIT_EVENT {
    AGENTSH_MESSAGE_HEADER Header;
    UINT64 SessionToken;
    UINT32 ProcessId;
    UINT32 Kind;                /* AGENTSH_KIND_* */
    UINT32 Operation;           /* FILE_OP_* or REG_OP_* */
    INT32 Status;               /* NTSTATUS the operation completed with */
    AGENTSH_STRING Path;
    AGENTSH_STRING ValueName;
} AGENTSH_AUDIT_EVENT, *PAGENTSH_AUDIT_EVENT;

/* MSG_DECISION_EVENT (driver -> user, no reply), 88 bytes + strings. The three strings are those of
 * the policy request of Kind, in its order: file Path, RenameDest, Volume; registry KeyPath,
 * ValueName, NewName. */
typedef struct _AGENTSH_DECISION_EVENT {
    AGENTSH_MESSAGE_HEADER Header;
    UINT64 SessionToken;
    UINT32 ProcessId;
    UINT32 ThreadId;
    UINT32 Kind;                /* AGENTSH_KIND_FILE or AGENTSH_KIND_REGISTRY */
    UINT32 Operation;           /* FILE_OP_* or REG_OP_* */
    UINT32 Decision;            /* DECISION_ALLOW or DECISION_DENY: what was enforced */
    UINT32 Source;              /* DECISION_SOURCE_* */
    UINT32 Reason;              /* DECISION_REASON_* */
    INT32 QueryStatus;          /* REASON_QUERY_FAILED / UNDECIDABLE: the NTSTATUS, else 0 */
    UINT32 Suppressed;          /* decision events left out (rate limit, full queue) since the last one */
    UINT32 Reserved;
    AGENTSH_STRING Path;        /* file Path / registry KeyPath */
    AGENTSH_STRING String1;     /* file RenameDest / registry ValueName */
    AGENTSH_STRING String2;     /* file Volume / registry NewName */
} AGENTSH_DECISION_EVENT, *PAGENTSH_DECISION_EVENT;

/* MSG_POLICY_RESPONSE (user -> driver, after FILTER_REPLY_HEADER), 32 bytes */
typedef struct _AGENTSH_POLICY_RESPONSE {
    AGENTSH_MESSAGE_HEADER Header; /* RequestId = the request's */
    UINT32 Decision;            /* DECISION_* */
    UINT32 CacheTTLMs;          /* AGENTSH_TTL_NO_CACHE, AGENTSH_TTL_DEFAULT or ms (capped) */
    UINT32 Flags;               /* reserved, 0 */
    UINT32 Reserved;
} AGENTSH_POLICY_RESPONSE, *PAGENTSH_POLICY_RESPONSE;

/* MSG_REGISTER_SESSION (user -> driver), 40 bytes + strings */
typedef struct _AGENTSH_SESSION_REGISTER {
    AGENTSH_MESSAGE_HEADER Header;
    UINT64 SessionToken;        /* non-zero */
    UINT32 RootProcessId;       /* non-zero; its descendants join the session */
    UINT32 Flags;               /* reserved, 0 */
    AGENTSH_STRING WorkspacePath;
} AGENTSH_SESSION_REGISTER, *PAGENTSH_SESSION_REGISTER;

/* MSG_UNREGISTER_SESSION (user -> driver), 24 bytes */
typedef struct _AGENTSH_SESSION_UNREGISTER {
    AGENTSH_MESSAGE_HEADER Header;
    UINT64 SessionToken;
} AGENTSH_SESSION_UNREGISTER, *PAGENTSH_SESSION_UNREGISTER;

/* MSG_UPDATE_CACHE (user -> driver), 40 bytes + strings */
typedef struct _AGENTSH_CACHE_UPDATE {
    AGENTSH_MESSAGE_HEADER Header;
    UINT32 Scope;               /* CACHE_SCOPE_* */
    UINT32 Kind;                /* AGENTSH_KIND_*: narrows PATH_PREFIX; ANY for the others */
    UINT64 SessionToken;        /* SESSION: required; PATH_PREFIX: 0 = every session */
    AGENTSH_STRING PathPrefix;  /* PATH_PREFIX: case-insensitive prefix of the cached path */
} AGENTSH_CACHE_UPDATE, *PAGENTSH_CACHE_UPDATE;

/* MSG_SHUTDOWN, MSG_GET_METRICS, MSG_GET_DECISION_COUNTS (user -> driver): the header alone, 16 bytes */

/* MSG_SET_CONFIG (user -> driver), 48 bytes. Invalid values reject the whole config. */
typedef struct _AGENTSH_CONFIG {
    AGENTSH_MESSAGE_HEADER Header;
    UINT32 FailMode;            /* FAIL_MODE_* */
    UINT32 PolicyQueryTimeoutMs;
    UINT32 MaxConsecutiveFailures;
    UINT32 CacheMaxEntries;
    UINT32 CacheDefaultTTLMs;
    UINT32 CacheMaxTTLMs;       /* >= CacheDefaultTTLMs */
    UINT32 ProbeIntervalMs;
    UINT32 Flags;               /* AGENTSH_CONFIG_FLAG_*; other bits 0 */
} AGENTSH_CONFIG, *PAGENTSH_CONFIG;

/* MSG_METRICS_REPLY (driver -> user, output of GET_METRICS), 184 bytes */
typedef struct _AGENTSH_METRICS {
    AGENTSH_MESSAGE_HEADER Header;
    UINT64 CacheHitCount;
    UINT64 CacheMissCount;
    UINT64 CacheEvictionCount;   /* removed for capacity */
    UINT64 CacheExpiredCount;    /* removed because the TTL ran out */
    UINT64 CacheCollapsedCount;  /* queries that waited on an identical in-flight query */
    UINT64 FilePolicyQueries;
    UINT64 RegistryPolicyQueries;
    UINT64 PolicyQueryTimeouts;  /* STATUS_TIMEOUT from FltSendMessage */
    UINT64 PolicyQueryFailures;  /* every failed query, timeouts included */
    UINT64 AllowDecisions;
    UINT64 DenyDecisions;
    UINT64 PendingDecisions;
    UINT64 FailModeDecisions;    /* answered by the fail mode instead of by policy */
    UINT64 FailModeEntries;      /* transitions NORMAL -> FAILING */
    UINT64 ProbeCount;           /* queries let through while FAILING */
    UINT64 ExcludedOperations;   /* operations skipped because the process is excluded */
    UINT32 CacheEntryCount;
    UINT32 CacheCapacity;
    UINT32 ActiveSessions;
    UINT32 TrackedProcesses;
    UINT32 ExcludedProcesses;
    UINT32 ConsecutiveFailures;
    UINT32 FailState;            /* FAIL_STATE_* */
    UINT32 FailMode;             /* configured FAIL_MODE_* */
    UINT32 ClientConnected;      /* 0 or 1 */
    UINT32 Reserved;
} AGENTSH_METRICS, *PAGENTSH_METRICS;

/* MSG_EXCLUDE_PROCESS (user -> driver), 24 + 4 * Count bytes: Count UINT32 pids follow the fixed
 * part (no flexible array member, so sizeof is the fixed part on every compiler). */
typedef struct _AGENTSH_EXCLUDE_PROCESS {
    AGENTSH_MESSAGE_HEADER Header;
    UINT32 Action;              /* EXCLUDE_ACTION_* */
    UINT32 Count;               /* <= AGENTSH_MAX_EXCLUDED_PIDS */
} AGENTSH_EXCLUDE_PROCESS, *PAGENTSH_EXCLUDE_PROCESS;
#define AGENTSH_EXCLUDE_PROCESS_PIDS(m) ((const UINT32 *)((const unsigned char *)(m) + sizeof(AGENTSH_EXCLUDE_PROCESS)))

/* MSG_DECISION_COUNTS_REPLY (driver -> user, output of GET_DECISION_COUNTS), 24 + 24 * Count bytes:
 * Count AGENTSH_DECISION_COUNT entries follow the fixed part, one per combination counted at least
 * once, in the order of their slots. The decisions of tracked processes that the driver made without
 * an answer of its own since it started, by how (Source: DECISION_SOURCE_CACHE for a cache hit or
 * the answer of an identical query in flight, DECISION_SOURCE_FAIL_MODE for the fail mode's, also
 * when the query in flight was answered by it), kind, operation and the decision enforced: what the
 * client cannot count itself. Kind and Operation are
 * 0 for a request whose kind or operation was out of range. The output buffer must hold
 * AGENTSH_DECISION_COUNTS_MAX_SIZE bytes, else STATUS_BUFFER_TOO_SMALL. */
typedef struct _AGENTSH_DECISION_COUNTS {
    AGENTSH_MESSAGE_HEADER Header;
    UINT32 Count;               /* <= AGENTSH_DECISION_COUNT_SLOTS */
    UINT32 Reserved;
} AGENTSH_DECISION_COUNTS, *PAGENTSH_DECISION_COUNTS;

typedef struct _AGENTSH_DECISION_COUNT {
    UINT32 Source;              /* DECISION_SOURCE_* */
    UINT32 Kind;                /* AGENTSH_KIND_FILE / _REGISTRY, or 0 */
    UINT32 Operation;           /* FILE_OP_* / REG_OP_*, or 0 */
    UINT32 Decision;            /* DECISION_ALLOW / DECISION_DENY: the decision enforced */
    UINT64 Count;
} AGENTSH_DECISION_COUNT, *PAGENTSH_DECISION_COUNT;
/* Slots: 2 sources x 3 kinds (0 = other) x 8 operations (0 = other) x 2 decisions. A reply's entries
 * have Source 1..2, Kind <= 2, Operation < 8, Decision <= 1, Count != 0, and strictly increasing
 * slots: */
#define AGENTSH_DECISION_COUNT_SLOTS    96u
#define AGENTSH_DECISION_SLOT(Source, Kind, Operation, Decision) \
    (((((Source) - 1u) * 3u + (Kind)) * 8u + (Operation)) * 2u + (Decision))
#define AGENTSH_DECISION_COUNTS_MAX_SIZE (24u + 24u * AGENTSH_DECISION_COUNT_SLOTS)
/* The largest output buffer a command fills (DECISION_COUNTS_REPLY; METRICS_REPLY and PONG are smaller). */
#define AGENTSH_PORT_OUTPUT_SIZE        AGENTSH_DECISION_COUNTS_MAX_SIZE
#define AGENTSH_DECISION_COUNTS_ENTRIES(m) \
    ((const AGENTSH_DECISION_COUNT *)((const unsigned char *)(m) + sizeof(AGENTSH_DECISION_COUNTS)))

/* MSG_PING (user -> driver), 24 bytes */
typedef struct _AGENTSH_PING {
    AGENTSH_MESSAGE_HEADER Header;
    UINT64 Timestamp;           /* echoed in the PONG */
} AGENTSH_PING, *PAGENTSH_PING;

/* MSG_PONG (driver -> user, output of PING), 32 bytes */
typedef struct _AGENTSH_PONG {
    AGENTSH_MESSAGE_HEADER Header;
    UINT32 ProtocolVersion;
    UINT32 ClientProcessId;     /* the connected client the driver remembers */
    UINT64 Timestamp;           /* the PING's */
} AGENTSH_PONG, *PAGENTSH_PONG;

/* User-mode views of whole port buffers (Windows framing). */
typedef struct _AGENTSH_REPLY_MESSAGE {
    FILTER_REPLY_HEADER ReplyHeader;
    AGENTSH_POLICY_RESPONSE Response;
} AGENTSH_REPLY_MESSAGE, *PAGENTSH_REPLY_MESSAGE;

/* ---------------------------------------------------------------------------------------------
 * Layout assertions: the same numbers for gcc (LP64), mingw-w64 and MSVC (LLP64).
 * ------------------------------------------------------------------------------------------- */
#if defined(__cplusplus)
#define AGENTSH_STATIC_ASSERT(e, m) static_assert(e, #m)
#elif defined(_MSC_VER) && !defined(__clang__)
#define AGENTSH_STATIC_ASSERT(e, m) typedef char AGENTSH_SA_##m[(e) ? 1 : -1]
#else
#define AGENTSH_STATIC_ASSERT(e, m) _Static_assert(e, #m)
#endif
#ifndef AGENTSH_OFFSETOF
#define AGENTSH_OFFSETOF(t, f) ((UINT32)offsetof(t, f))
#endif
#define AGENTSH_ASSERT_SIZE(t, n) AGENTSH_STATIC_ASSERT(sizeof(t) == (n), size_##t)
#define AGENTSH_ASSERT_OFFSET(t, f, n) AGENTSH_STATIC_ASSERT(AGENTSH_OFFSETOF(t, f) == (n), off_##t##_##f)

AGENTSH_ASSERT_SIZE(FILTER_MESSAGE_HEADER, 16);
AGENTSH_ASSERT_OFFSET(FILTER_MESSAGE_HEADER, ReplyLength, 0);
AGENTSH_ASSERT_OFFSET(FILTER_MESSAGE_HEADER, MessageId, 8);
AGENTSH_ASSERT_SIZE(FILTER_REPLY_HEADER, 16);
AGENTSH_ASSERT_OFFSET(FILTER_REPLY_HEADER, Status, 0);
AGENTSH_ASSERT_OFFSET(FILTER_REPLY_HEADER, MessageId, 8);

AGENTSH_ASSERT_SIZE(AGENTSH_CONNECT_CONTEXT, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_CONNECT_CONTEXT, Magic, 0);
AGENTSH_ASSERT_OFFSET(AGENTSH_CONNECT_CONTEXT, ProtocolVersion, 4);
AGENTSH_ASSERT_OFFSET(AGENTSH_CONNECT_CONTEXT, ClientProcessId, 8);
AGENTSH_ASSERT_OFFSET(AGENTSH_CONNECT_CONTEXT, Flags, 12);

AGENTSH_ASSERT_SIZE(AGENTSH_MESSAGE_HEADER, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_MESSAGE_HEADER, Type, 0);
AGENTSH_ASSERT_OFFSET(AGENTSH_MESSAGE_HEADER, Size, 4);
AGENTSH_ASSERT_OFFSET(AGENTSH_MESSAGE_HEADER, RequestId, 8);

AGENTSH_ASSERT_SIZE(AGENTSH_STRING, 8);
AGENTSH_ASSERT_OFFSET(AGENTSH_STRING, Offset, 0);
AGENTSH_ASSERT_OFFSET(AGENTSH_STRING, Length, 4);

AGENTSH_ASSERT_SIZE(AGENTSH_FILE_REQUEST, 72);
AGENTSH_ASSERT_OFFSET(AGENTSH_FILE_REQUEST, SessionToken, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_FILE_REQUEST, ProcessId, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_FILE_REQUEST, ThreadId, 28);
AGENTSH_ASSERT_OFFSET(AGENTSH_FILE_REQUEST, Operation, 32);
AGENTSH_ASSERT_OFFSET(AGENTSH_FILE_REQUEST, CreateDisposition, 36);
AGENTSH_ASSERT_OFFSET(AGENTSH_FILE_REQUEST, DesiredAccess, 40);
AGENTSH_ASSERT_OFFSET(AGENTSH_FILE_REQUEST, Flags, 44);
AGENTSH_ASSERT_OFFSET(AGENTSH_FILE_REQUEST, Path, 48);
AGENTSH_ASSERT_OFFSET(AGENTSH_FILE_REQUEST, RenameDest, 56);
AGENTSH_ASSERT_OFFSET(AGENTSH_FILE_REQUEST, Volume, 64);

AGENTSH_ASSERT_SIZE(AGENTSH_REGISTRY_REQUEST, 72);
AGENTSH_ASSERT_OFFSET(AGENTSH_REGISTRY_REQUEST, SessionToken, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_REGISTRY_REQUEST, ProcessId, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_REGISTRY_REQUEST, ThreadId, 28);
AGENTSH_ASSERT_OFFSET(AGENTSH_REGISTRY_REQUEST, Operation, 32);
AGENTSH_ASSERT_OFFSET(AGENTSH_REGISTRY_REQUEST, ValueType, 36);
AGENTSH_ASSERT_OFFSET(AGENTSH_REGISTRY_REQUEST, DataSize, 40);
AGENTSH_ASSERT_OFFSET(AGENTSH_REGISTRY_REQUEST, Reserved, 44);
AGENTSH_ASSERT_OFFSET(AGENTSH_REGISTRY_REQUEST, KeyPath, 48);
AGENTSH_ASSERT_OFFSET(AGENTSH_REGISTRY_REQUEST, ValueName, 56);
AGENTSH_ASSERT_OFFSET(AGENTSH_REGISTRY_REQUEST, NewName, 64);

AGENTSH_ASSERT_SIZE(AGENTSH_PROCESS_EVENT, 48);
AGENTSH_ASSERT_OFFSET(AGENTSH_PROCESS_EVENT, SessionToken, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_PROCESS_EVENT, ProcessId, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_PROCESS_EVENT, CreatorProcessId, 28);
AGENTSH_ASSERT_OFFSET(AGENTSH_PROCESS_EVENT, ParentProcessId, 32);
AGENTSH_ASSERT_OFFSET(AGENTSH_PROCESS_EVENT, ExitStatus, 36);
AGENTSH_ASSERT_OFFSET(AGENTSH_PROCESS_EVENT, ImagePath, 40);

AGENTSH_ASSERT_SIZE(AGENTSH_AUDIT_EVENT, 56);
AGENTSH_ASSERT_OFFSET(AGENTSH_AUDIT_EVENT, SessionToken, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_AUDIT_EVENT, ProcessId, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_AUDIT_EVENT, Kind, 28);
AGENTSH_ASSERT_OFFSET(AGENTSH_AUDIT_EVENT, Operation, 32);
AGENTSH_ASSERT_OFFSET(AGENTSH_AUDIT_EVENT, Status, 36);
AGENTSH_ASSERT_OFFSET(AGENTSH_AUDIT_EVENT, Path, 40);
AGENTSH_ASSERT_OFFSET(AGENTSH_AUDIT_EVENT, ValueName, 48);

AGENTSH_ASSERT_SIZE(AGENTSH_DECISION_EVENT, 88);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, SessionToken, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, ProcessId, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, ThreadId, 28);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, Kind, 32);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, Operation, 36);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, Decision, 40);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, Source, 44);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, Reason, 48);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, QueryStatus, 52);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, Suppressed, 56);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, Reserved, 60);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, Path, 64);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, String1, 72);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_EVENT, String2, 80);

AGENTSH_ASSERT_SIZE(AGENTSH_POLICY_RESPONSE, 32);
AGENTSH_ASSERT_OFFSET(AGENTSH_POLICY_RESPONSE, Decision, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_POLICY_RESPONSE, CacheTTLMs, 20);
AGENTSH_ASSERT_OFFSET(AGENTSH_POLICY_RESPONSE, Flags, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_POLICY_RESPONSE, Reserved, 28);

AGENTSH_ASSERT_SIZE(AGENTSH_SESSION_REGISTER, 40);
AGENTSH_ASSERT_OFFSET(AGENTSH_SESSION_REGISTER, SessionToken, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_SESSION_REGISTER, RootProcessId, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_SESSION_REGISTER, Flags, 28);
AGENTSH_ASSERT_OFFSET(AGENTSH_SESSION_REGISTER, WorkspacePath, 32);

AGENTSH_ASSERT_SIZE(AGENTSH_SESSION_UNREGISTER, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_SESSION_UNREGISTER, SessionToken, 16);

AGENTSH_ASSERT_SIZE(AGENTSH_CACHE_UPDATE, 40);
AGENTSH_ASSERT_OFFSET(AGENTSH_CACHE_UPDATE, Scope, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_CACHE_UPDATE, Kind, 20);
AGENTSH_ASSERT_OFFSET(AGENTSH_CACHE_UPDATE, SessionToken, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_CACHE_UPDATE, PathPrefix, 32);

AGENTSH_ASSERT_SIZE(AGENTSH_CONFIG, 48);
AGENTSH_ASSERT_OFFSET(AGENTSH_CONFIG, FailMode, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_CONFIG, PolicyQueryTimeoutMs, 20);
AGENTSH_ASSERT_OFFSET(AGENTSH_CONFIG, MaxConsecutiveFailures, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_CONFIG, CacheMaxEntries, 28);
AGENTSH_ASSERT_OFFSET(AGENTSH_CONFIG, CacheDefaultTTLMs, 32);
AGENTSH_ASSERT_OFFSET(AGENTSH_CONFIG, CacheMaxTTLMs, 36);
AGENTSH_ASSERT_OFFSET(AGENTSH_CONFIG, ProbeIntervalMs, 40);
AGENTSH_ASSERT_OFFSET(AGENTSH_CONFIG, Flags, 44);

AGENTSH_ASSERT_SIZE(AGENTSH_METRICS, 184);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, CacheHitCount, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, CacheMissCount, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, CacheEvictionCount, 32);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, CacheExpiredCount, 40);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, CacheCollapsedCount, 48);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, FilePolicyQueries, 56);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, RegistryPolicyQueries, 64);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, PolicyQueryTimeouts, 72);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, PolicyQueryFailures, 80);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, AllowDecisions, 88);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, DenyDecisions, 96);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, PendingDecisions, 104);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, FailModeDecisions, 112);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, FailModeEntries, 120);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, ProbeCount, 128);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, ExcludedOperations, 136);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, CacheEntryCount, 144);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, CacheCapacity, 148);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, ActiveSessions, 152);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, TrackedProcesses, 156);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, ExcludedProcesses, 160);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, ConsecutiveFailures, 164);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, FailState, 168);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, FailMode, 172);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, ClientConnected, 176);
AGENTSH_ASSERT_OFFSET(AGENTSH_METRICS, Reserved, 180);

AGENTSH_ASSERT_SIZE(AGENTSH_EXCLUDE_PROCESS, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_EXCLUDE_PROCESS, Action, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_EXCLUDE_PROCESS, Count, 20);

AGENTSH_ASSERT_SIZE(AGENTSH_PING, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_PING, Timestamp, 16);

AGENTSH_ASSERT_SIZE(AGENTSH_DECISION_COUNTS, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_COUNTS, Count, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_COUNTS, Reserved, 20);
AGENTSH_ASSERT_SIZE(AGENTSH_DECISION_COUNT, 24);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_COUNT, Source, 0);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_COUNT, Kind, 4);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_COUNT, Operation, 8);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_COUNT, Decision, 12);
AGENTSH_ASSERT_OFFSET(AGENTSH_DECISION_COUNT, Count, 16);
AGENTSH_ASSERT_SIZE(AGENTSH_PONG, 32);
AGENTSH_ASSERT_OFFSET(AGENTSH_PONG, ProtocolVersion, 16);
AGENTSH_ASSERT_OFFSET(AGENTSH_PONG, ClientProcessId, 20);
AGENTSH_ASSERT_OFFSET(AGENTSH_PONG, Timestamp, 24);

AGENTSH_ASSERT_SIZE(AGENTSH_REPLY_MESSAGE, 48);
AGENTSH_ASSERT_OFFSET(AGENTSH_REPLY_MESSAGE, Response, 16);

#ifdef __cplusplus
}
#endif

#endif /* AGENTSH_PROTOCOL_H */
