/*
 * ash_dispatch.c - user -> driver messages: the body of the communication port's MessageNotify,
 * shared by the kernel (kernel/ash_port.c, after capturing the user buffer) and the simulator.
 *
 * Every message is validated by AgentshValidateMessage (Size and String rules) and then by the
 * semantic rules below; a malformed message changes nothing and returns STATUS_INVALID_PARAMETER.
 *
 *   REGISTER_SESSION   token != 0, root pid != 0, Flags == 0; re-registering the same token with the
 *                      same root succeeds; a root tracked in another session -> OBJECT_NAME_COLLISION
 *   UNREGISTER_SESSION removes the session, its processes and its cached decisions; unknown ->
 *                      STATUS_NOT_FOUND
 *   UPDATE_CACHE       ALL: Kind ANY, token 0, no prefix. SESSION: Kind ANY, token != 0, no prefix.
 *                      PATH_PREFIX: Kind ANY/FILE/REGISTRY, token 0 (every session) or one, prefix
 *                      non-empty
 *   SHUTDOWN           the client is going away: answer by fail mode until it reconnects
 *   SET_CONFIG         validated whole (ash_config.c), then applied; cache capacity follows
 *   GET_METRICS        output >= sizeof(AGENTSH_METRICS) else STATUS_BUFFER_TOO_SMALL
 *   GET_DECISION_COUNTS output >= AGENTSH_DECISION_COUNTS_MAX_SIZE else STATUS_BUFFER_TOO_SMALL
 *   EXCLUDE_PROCESS    add / remove / replace, pids != 0, result <= AGENTSH_MAX_EXCLUDED_PIDS
 *   PING               output >= sizeof(AGENTSH_PONG)
 *   any other type     STATUS_NOT_SUPPORTED (driver -> user types included)
 */
#include "agentsh_core.h"

static NTSTATUS AgentshDispatchRegister(_Inout_ AGENTSH_CORE *Core, _In_ const UINT8 *In)
{
    AGENTSH_SESSION_REGISTER r;
    AGENTSH_USTR workspace;
    AgentshMemCopy(&r, In, sizeof(r));
    if (r.SessionToken == 0 || r.RootProcessId == 0 || r.Flags != 0) {
        return STATUS_INVALID_PARAMETER;
    }
    workspace = AgentshMessageString(In, &r.WorkspacePath);
    return AgentshSessionRegister(&Core->Sessions, r.SessionToken, r.RootProcessId, &workspace);
}

static NTSTATUS AgentshDispatchUnregister(_Inout_ AGENTSH_CORE *Core, _In_ const UINT8 *In)
{
    AGENTSH_SESSION_UNREGISTER u;
    NTSTATUS status;
    AgentshMemCopy(&u, In, sizeof(u));
    if (u.SessionToken == 0) {
        return STATUS_INVALID_PARAMETER;
    }
    status = AgentshSessionUnregister(&Core->Sessions, u.SessionToken);
    /* flush in any case: decisions of an unknown session must not survive either */
    AgentshCacheInvalidateSession(&Core->Cache, u.SessionToken);
    return status;
}

static NTSTATUS AgentshDispatchCache(_Inout_ AGENTSH_CORE *Core, _In_ const UINT8 *In)
{
    AGENTSH_CACHE_UPDATE u;
    AGENTSH_USTR prefix;
    BOOLEAN hasPrefix;
    AgentshMemCopy(&u, In, sizeof(u));
    hasPrefix = u.PathPrefix.Length != 0 || u.PathPrefix.Offset != 0;
    switch (u.Scope) {
    case CACHE_SCOPE_ALL:
        if (u.Kind != AGENTSH_KIND_ANY || u.SessionToken != 0 || hasPrefix) {
            return STATUS_INVALID_PARAMETER;
        }
        AgentshCacheInvalidateAll(&Core->Cache);
        return STATUS_SUCCESS;
    case CACHE_SCOPE_SESSION:
        if (u.Kind != AGENTSH_KIND_ANY || u.SessionToken == 0 || hasPrefix) {
            return STATUS_INVALID_PARAMETER;
        }
        AgentshCacheInvalidateSession(&Core->Cache, u.SessionToken);
        return STATUS_SUCCESS;
    case CACHE_SCOPE_PATH_PREFIX:
        if (u.Kind > AGENTSH_KIND_REGISTRY || u.PathPrefix.Length == 0) {
            return STATUS_INVALID_PARAMETER;
        }
        prefix = AgentshMessageString(In, &u.PathPrefix);
        AgentshCacheInvalidatePrefix(&Core->Cache, u.Kind, u.SessionToken, &prefix);
        return STATUS_SUCCESS;
    default:
        return STATUS_INVALID_PARAMETER;
    }
}

static NTSTATUS AgentshDispatchConfig(_Inout_ AGENTSH_CORE *Core, _In_ const UINT8 *In)
{
    AGENTSH_CONFIG c;
    NTSTATUS status;
    AgentshMemCopy(&c, In, sizeof(c));
    status = AgentshConfigValidate(&c);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    AgentshLockExclusive(&Core->ConfigLock);
    Core->Config.FailMode = c.FailMode;
    Core->Config.PolicyQueryTimeoutMs = c.PolicyQueryTimeoutMs;
    Core->Config.MaxConsecutiveFailures = c.MaxConsecutiveFailures;
    Core->Config.CacheMaxEntries = c.CacheMaxEntries;
    Core->Config.CacheDefaultTTLMs = c.CacheDefaultTTLMs;
    Core->Config.CacheMaxTTLMs = c.CacheMaxTTLMs;
    Core->Config.ProbeIntervalMs = c.ProbeIntervalMs;
    Core->Config.Flags = c.Flags;
    AgentshUnlockExclusive(&Core->ConfigLock);
    /* outside the config lock: no two core locks held at once */
    AgentshCacheSetCapacity(&Core->Cache, c.CacheMaxEntries);
    return STATUS_SUCCESS;
}

static NTSTATUS AgentshDispatchExclude(_Inout_ AGENTSH_CORE *Core, _In_ const UINT8 *In)
{
    AGENTSH_EXCLUDE_PROCESS e;
    UINT32 pids[AGENTSH_MAX_EXCLUDED_PIDS];
    AgentshMemCopy(&e, In, sizeof(e));
    if (e.Count > AGENTSH_MAX_EXCLUDED_PIDS) {
        return STATUS_INVALID_PARAMETER; /* already checked by the validator */
    }
    if (e.Count != 0) {
        AgentshMemCopy(pids, In + sizeof(e), (SIZE_T)e.Count * sizeof(UINT32));
    }
    return AgentshExclusionApply(&Core->Exclusion, e.Action, pids, e.Count);
}

NTSTATUS AgentshCoreDispatch(_Inout_ AGENTSH_CORE *Core,
    _In_reads_bytes_(InputLength) const void *Input, _In_ UINT32 InputLength,
    _Out_writes_bytes_to_opt_(OutputLength, *ReturnOutputLength) void *Output, _In_ UINT32 OutputLength,
    _Out_ UINT32 *ReturnOutputLength)
{
    const UINT8 *in = (const UINT8 *)Input;
    AGENTSH_MESSAGE_HEADER header;
    UINT32 type = 0;
    NTSTATUS status;

    *ReturnOutputLength = 0;
    status = AgentshValidateMessage(Input, InputLength, &type);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    AgentshMemCopy(&header, in, sizeof(header));

    switch (type) {
    case MSG_REGISTER_SESSION:
        return AgentshDispatchRegister(Core, in);
    case MSG_UNREGISTER_SESSION:
        return AgentshDispatchUnregister(Core, in);
    case MSG_UPDATE_CACHE:
        return AgentshDispatchCache(Core, in);
    case MSG_SHUTDOWN:
        AgentshAtomicStore32(&Core->ClientShutdown, 1);
        return STATUS_SUCCESS;
    case MSG_SET_CONFIG:
        return AgentshDispatchConfig(Core, in);
    case MSG_GET_METRICS: {
        AGENTSH_METRICS m;
        if (Output == NULL || OutputLength < sizeof(m)) {
            return STATUS_BUFFER_TOO_SMALL;
        }
        AgentshCoreGetMetrics(Core, &m);
        m.Header.RequestId = header.RequestId;
        AgentshMemCopy(Output, &m, sizeof(m));
        *ReturnOutputLength = sizeof(m);
        return STATUS_SUCCESS;
    }
    case MSG_GET_DECISION_COUNTS:
        if (Output == NULL || OutputLength < AGENTSH_DECISION_COUNTS_MAX_SIZE) {
            return STATUS_BUFFER_TOO_SMALL;
        }
        *ReturnOutputLength = AgentshCoreGetDecisionCounts(Core, header.RequestId, Output);
        return STATUS_SUCCESS;
    case MSG_EXCLUDE_PROCESS:
        return AgentshDispatchExclude(Core, in);
    case MSG_PING: {
        AGENTSH_PING ping;
        AGENTSH_PONG pong;
        if (Output == NULL || OutputLength < sizeof(pong)) {
            return STATUS_BUFFER_TOO_SMALL;
        }
        AgentshMemCopy(&ping, in, sizeof(ping));
        AgentshMemZero(&pong, sizeof(pong));
        pong.Header.Type = MSG_PONG;
        pong.Header.Size = sizeof(pong);
        pong.Header.RequestId = header.RequestId;
        pong.ProtocolVersion = AGENTSH_PROTOCOL_VERSION;
        pong.ClientProcessId = AgentshAtomicLoad32(&Core->ClientProcessId);
        pong.Timestamp = ping.Timestamp;
        AgentshMemCopy(Output, &pong, sizeof(pong));
        *ReturnOutputLength = sizeof(pong);
        return STATUS_SUCCESS;
    }
    default:
        return STATUS_NOT_SUPPORTED; /* valid message, wrong direction */
    }
}
