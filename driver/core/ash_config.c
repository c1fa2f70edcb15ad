/*
 * ash_config.c - driver configuration: defaults and validation of MSG_SET_CONFIG against the ranges
 * of protocol.h. An out-of-range field rejects the whole message (STATUS_INVALID_PARAMETER); nothing
 * is applied partially. Applying (core lock + cache capacity) is in ash_core.c.
 */
#include "agentsh_core.h"

void AgentshConfigDefaults(_Out_ AGENTSH_CORE_CONFIG *Config)
{
    Config->FailMode = AGENTSH_CONFIG_DEFAULT_FAIL_MODE;
    Config->PolicyQueryTimeoutMs = AGENTSH_CONFIG_TIMEOUT_DEFAULT_MS;
    Config->MaxConsecutiveFailures = AGENTSH_CONFIG_MAX_FAILURES_DEFAULT;
    Config->CacheMaxEntries = AGENTSH_CONFIG_CACHE_ENTRIES_DEFAULT;
    Config->CacheDefaultTTLMs = AGENTSH_CONFIG_CACHE_TTL_DEFAULT_MS;
    Config->CacheMaxTTLMs = AGENTSH_CONFIG_CACHE_MAX_TTL_DEFAULT_MS;
    Config->ProbeIntervalMs = AGENTSH_CONFIG_PROBE_DEFAULT_MS;
    Config->Flags = AGENTSH_CONFIG_DEFAULT_FLAGS;
}

#define AGENTSH_IN_RANGE(v, lo, hi) ((v) >= (lo) && (v) <= (hi))

NTSTATUS AgentshConfigValidate(_In_ const AGENTSH_CONFIG *M)
{
    if (M->Header.Type != MSG_SET_CONFIG || M->Header.Size != sizeof(AGENTSH_CONFIG) ||
        (M->FailMode != FAIL_MODE_OPEN && M->FailMode != FAIL_MODE_CLOSED) ||
        !AGENTSH_IN_RANGE(M->PolicyQueryTimeoutMs, AGENTSH_CONFIG_TIMEOUT_MIN_MS, AGENTSH_CONFIG_TIMEOUT_MAX_MS) ||
        !AGENTSH_IN_RANGE(M->MaxConsecutiveFailures, AGENTSH_CONFIG_MAX_FAILURES_MIN,
                          AGENTSH_CONFIG_MAX_FAILURES_MAX) ||
        !AGENTSH_IN_RANGE(M->CacheMaxEntries, AGENTSH_CONFIG_CACHE_ENTRIES_MIN, AGENTSH_CONFIG_CACHE_ENTRIES_MAX) ||
        !AGENTSH_IN_RANGE(M->CacheDefaultTTLMs, AGENTSH_CONFIG_CACHE_TTL_MIN_MS, AGENTSH_CONFIG_CACHE_TTL_MAX_MS) ||
        !AGENTSH_IN_RANGE(M->CacheMaxTTLMs, AGENTSH_CONFIG_CACHE_TTL_MIN_MS, AGENTSH_CONFIG_CACHE_TTL_MAX_MS) ||
        M->CacheMaxTTLMs < M->CacheDefaultTTLMs ||
        !AGENTSH_IN_RANGE(M->ProbeIntervalMs, AGENTSH_CONFIG_PROBE_MIN_MS, AGENTSH_CONFIG_PROBE_MAX_MS) ||
        (M->Flags & ~AGENTSH_CONFIG_FLAGS_VALID) != 0) {
        return STATUS_INVALID_PARAMETER;
    }
    return STATUS_SUCCESS;
}
