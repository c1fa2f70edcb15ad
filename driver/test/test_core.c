/* test_core.c - decisions, fail mode transitions, config validation, sessions, exclusion,
 * dispatcher semantics, notifications. */
#include "test.h"

static void test_decide_sources_and_ttl(void)
{
    AGENTSH_CORE core;
    FAKE_PORT port;
    AGENTSH_VERDICT v;
    AGENTSH_METRICS m;
    CoreSetup(&core, &port);
    v = DecideFile(&core, 999, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\a", NULL);
    CHECK_EQ(v.Source, AGENTSH_SOURCE_UNTRACKED);
    CHECK_EQ(v.Decision, DECISION_ALLOW);
    CHECK_EQ(port.Calls, 0);
    v = DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\a", NULL);
    CHECK_EQ(v.Source, AGENTSH_SOURCE_BROKER);
    CHECK_EQ(v.SessionToken, 7);
    CHECK_EQ(port.LastType, MSG_POLICY_CHECK_FILE);
    v = DecideFile(&core, 100, FILE_OP_WRITE, "\\DEVICE\\HarddiskVolume3\\A", NULL);
    CHECK_EQ(v.Source, AGENTSH_SOURCE_CACHE);
    CHECK_EQ(port.Calls, 1);
    /* TTL_DEFAULT -> CacheDefaultTTLMs (5000) */
    gFakeNow += 4999;
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\a", NULL).Source, AGENTSH_SOURCE_CACHE);
    gFakeNow += 1;
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\a", NULL).Source, AGENTSH_SOURCE_BROKER);
    /* a reply TTL above CacheMaxTTLMs is capped */
    CHECK(SendConfig(&core, 0, 5000, 10, 4096, 1000, 2000, 1000) == STATUS_SUCCESS);
    port.Ttl = 3600000;
    port.Decision = DECISION_DENY;
    v = DecideFile(&core, 100, FILE_OP_DELETE, "\\Device\\HarddiskVolume3\\b", NULL);
    CHECK_EQ(v.Decision, DECISION_DENY);
    gFakeNow += 1999;
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_DELETE, "\\Device\\HarddiskVolume3\\b", NULL).Source, AGENTSH_SOURCE_CACHE);
    gFakeNow += 1;
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_DELETE, "\\Device\\HarddiskVolume3\\b", NULL).Source, AGENTSH_SOURCE_BROKER);
    /* explicit small TTL honoured */
    port.Ttl = 150;
    DecideFile(&core, 100, FILE_OP_READ, "\\Device\\HarddiskVolume3\\c", NULL);
    gFakeNow += 149;
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_READ, "\\Device\\HarddiskVolume3\\c", NULL).Source, AGENTSH_SOURCE_CACHE);
    /* TTL_NO_CACHE: asked every time */
    port.Ttl = AGENTSH_TTL_NO_CACHE;
    DecideFile(&core, 100, FILE_OP_CREATE, "\\Device\\HarddiskVolume3\\d", NULL);
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_CREATE, "\\Device\\HarddiskVolume3\\d", NULL).Source, AGENTSH_SOURCE_BROKER);
    /* PENDING: denied, never cached, counted */
    port.Ttl = AGENTSH_TTL_DEFAULT;
    port.Decision = DECISION_PENDING;
    v = DecideReg(&core, 100, REG_OP_SET_VALUE, "\\REGISTRY\\MACHINE\\SOFTWARE\\Run", "evil");
    CHECK_EQ(v.Decision, DECISION_DENY);
    CHECK_EQ(v.RawDecision, DECISION_PENDING);
    CHECK_EQ(port.LastType, MSG_POLICY_CHECK_REGISTRY);
    v = DecideReg(&core, 100, REG_OP_SET_VALUE, "\\REGISTRY\\MACHINE\\SOFTWARE\\Run", "evil");
    CHECK_EQ(v.Source, AGENTSH_SOURCE_BROKER);
    /* registry key includes the value name */
    port.Decision = DECISION_ALLOW;
    DecideReg(&core, 100, REG_OP_SET_VALUE, "\\REGISTRY\\MACHINE\\SOFTWARE\\X", "a");
    CHECK_EQ(DecideReg(&core, 100, REG_OP_SET_VALUE, "\\REGISTRY\\MACHINE\\SOFTWARE\\X", "b").Source, AGENTSH_SOURCE_BROKER);
    CHECK_EQ(DecideReg(&core, 100, REG_OP_SET_VALUE, "\\registry\\machine\\software\\x", "A").Source, AGENTSH_SOURCE_CACHE);
    GetMetrics(&core, &m);
    CHECK_EQ(m.PendingDecisions, 2);
    CHECK_EQ(m.RegistryPolicyQueries, 4);
    CHECK_EQ(m.FilePolicyQueries, 7);
    CHECK_EQ(m.CacheHitCount, 5);
    CHECK_EQ(m.AllowDecisions + m.DenyDecisions, 16); /* untracked not counted */
    CHECK_EQ(m.FailModeDecisions, 0);
    CoreTeardown(&core);
}

static void test_failmode_transitions(void)
{
    AGENTSH_CORE core;
    FAKE_PORT port;
    AGENTSH_VERDICT v;
    AGENTSH_METRICS m;
    int i;
    CoreSetup(&core, &port);
    CHECK(SendConfig(&core, FAIL_MODE_CLOSED, 100, 3, 4096, 5000, 3600000, 1000) == STATUS_SUCCESS);
    /* a cached decision from before the outage */
    DecideFile(&core, 100, FILE_OP_WRITE, "\\cached", NULL);
    port.Mode = FAKE_TIMEOUT;
    for (i = 0; i < 2; i++) {
        v = DecideFile(&core, 100, FILE_OP_WRITE, "\\t", NULL);
        CHECK_EQ(v.Source, AGENTSH_SOURCE_FAILMODE);
        CHECK_EQ(v.Decision, DECISION_DENY);            /* closed */
        CHECK_EQ(v.QueryStatus, STATUS_TIMEOUT);
    }
    GetMetrics(&core, &m);
    CHECK_EQ(m.FailState, FAIL_STATE_NORMAL);
    CHECK_EQ(m.ConsecutiveFailures, 2);
    v = DecideFile(&core, 100, FILE_OP_WRITE, "\\t", NULL);   /* third failure: threshold */
    GetMetrics(&core, &m);
    CHECK_EQ(m.FailState, FAIL_STATE_FAILING);
    CHECK_EQ(m.FailModeEntries, 1);
    CHECK_EQ(m.PolicyQueryTimeouts, 3);
    CHECK_EQ(m.PolicyQueryFailures, 3);
    CHECK_EQ(port.Calls, 4);
    /* FAILING: answered at once, no send, until the probe interval passes */
    for (i = 0; i < 5; i++) {
        v = DecideFile(&core, 100, FILE_OP_WRITE, "\\u", NULL);
        CHECK_EQ(v.Source, AGENTSH_SOURCE_FAILMODE);
    }
    CHECK_EQ(port.Calls, 4);
    /* cache still answers while failing */
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\cached", NULL).Source, AGENTSH_SOURCE_CACHE);
    gFakeNow += 999;
    DecideFile(&core, 100, FILE_OP_WRITE, "\\u", NULL);
    CHECK_EQ(port.Calls, 4);
    gFakeNow += 1;
    v = DecideFile(&core, 100, FILE_OP_WRITE, "\\u", NULL);   /* the probe; fails */
    CHECK_EQ(port.Calls, 5);
    CHECK_EQ(v.Source, AGENTSH_SOURCE_FAILMODE);
    DecideFile(&core, 100, FILE_OP_WRITE, "\\u", NULL);       /* next probe only after another interval */
    CHECK_EQ(port.Calls, 5);
    GetMetrics(&core, &m);
    CHECK_EQ(m.ProbeCount, 1);
    CHECK_EQ(m.FailState, FAIL_STATE_FAILING);
    CHECK_EQ(m.FailModeEntries, 1);
    /* fail mode open answers allow */
    CHECK(SendConfig(&core, FAIL_MODE_OPEN, 100, 3, 4096, 5000, 3600000, 1000) == STATUS_SUCCESS);
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\u", NULL).Decision, DECISION_ALLOW);
    /* probe success -> NORMAL, counter reset, cache flushed */
    port.Mode = FAKE_ANSWER;
    port.Decision = DECISION_DENY;
    gFakeNow += 1000;
    v = DecideFile(&core, 100, FILE_OP_WRITE, "\\u", NULL);
    CHECK_EQ(v.Source, AGENTSH_SOURCE_BROKER);
    CHECK_EQ(v.Decision, DECISION_DENY);
    GetMetrics(&core, &m);
    CHECK_EQ(m.FailState, FAIL_STATE_NORMAL);
    CHECK_EQ(m.ConsecutiveFailures, 0);
    CHECK_EQ(m.ProbeCount, 2);
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\cached", NULL).Source, AGENTSH_SOURCE_BROKER); /* flushed */
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\u", NULL).Source, AGENTSH_SOURCE_CACHE); /* probe answer cached */
    CoreTeardown(&core);
}

static void test_failmode_failure_kinds(void)
{
    static const int modes[] = { FAKE_DISCONNECTED, FAKE_SHORT, FAKE_LONG, FAKE_WRONG_ID, FAKE_WRONG_TYPE,
                                 FAKE_BAD_DECISION, FAKE_NONZERO_FLAGS, FAKE_ERROR_STATUS, FAKE_TIMEOUT };
    unsigned i;
    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        AGENTSH_CORE core;
        FAKE_PORT port;
        AGENTSH_METRICS m;
        AGENTSH_VERDICT v;
        CoreSetup(&core, &port);
        CHECK(SendConfig(&core, FAIL_MODE_CLOSED, 100, 1, 4096, 5000, 3600000, 1000) == STATUS_SUCCESS);
        port.Mode = modes[i];
        v = DecideFile(&core, 100, FILE_OP_WRITE, "\\f", NULL);
        CHECK_EQ(v.Source, AGENTSH_SOURCE_FAILMODE);
        CHECK_EQ(v.Decision, DECISION_DENY);
        GetMetrics(&core, &m);
        CHECK_EQ(m.PolicyQueryFailures, 1);
        CHECK_EQ(m.PolicyQueryTimeouts, modes[i] == FAKE_TIMEOUT ? 1 : 0);
        CHECK_EQ(m.FailState, FAIL_STATE_FAILING);
        CHECK_EQ(m.CacheEntryCount, 0);
        CoreTeardown(&core);
    }
}

static void test_failmode_no_client_and_reconnect(void)
{
    AGENTSH_CORE core;
    FAKE_PORT port;
    AGENTSH_METRICS m;
    AGENTSH_MESSAGE_HEADER shut = { MSG_SHUTDOWN, 16, 1 };
    CoreSetup(&core, &port);
    DecideFile(&core, 100, FILE_OP_WRITE, "\\keep", NULL);
    AgentshCoreClientDisconnected(&core);
    /* default fail mode is open; no send attempted, fail state untouched */
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\n", NULL).Decision, DECISION_ALLOW);
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\n", NULL).Source, AGENTSH_SOURCE_FAILMODE);
    CHECK_EQ(port.Calls, 1);
    GetMetrics(&core, &m);
    CHECK_EQ(m.ClientConnected, 0);
    CHECK_EQ(m.FailState, FAIL_STATE_NORMAL);
    CHECK_EQ(m.FailModeDecisions, 2);
    CHECK_EQ(m.PolicyQueryFailures, 0);
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\keep", NULL).Source, AGENTSH_SOURCE_CACHE);
    /* enter FAILING, then a reconnect resets it and flushes */
    AgentshCoreClientConnected(&core, 1);
    CHECK(SendConfig(&core, FAIL_MODE_OPEN, 100, 1, 4096, 5000, 3600000, 1000) == STATUS_SUCCESS);
    port.Mode = FAKE_DISCONNECTED;
    DecideFile(&core, 100, FILE_OP_WRITE, "\\z", NULL);
    GetMetrics(&core, &m);
    CHECK_EQ(m.FailState, FAIL_STATE_FAILING);
    AgentshCoreClientDisconnected(&core);
    AgentshCoreClientConnected(&core, 2);
    GetMetrics(&core, &m);
    CHECK_EQ(m.FailState, FAIL_STATE_NORMAL);
    CHECK_EQ(m.ConsecutiveFailures, 0);
    CHECK_EQ(m.CacheEntryCount, 0);
    CHECK_EQ(m.ClientConnected, 1);
    port.Mode = FAKE_ANSWER;
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\keep", NULL).Source, AGENTSH_SOURCE_BROKER);
    /* SHUTDOWN: fail mode until the next connect */
    CHECK(Dispatch(&core, &shut, sizeof(shut)) == STATUS_SUCCESS);
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\s", NULL).Source, AGENTSH_SOURCE_FAILMODE);
    AgentshCoreClientConnected(&core, 3);
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\s", NULL).Source, AGENTSH_SOURCE_BROKER);
    CoreTeardown(&core);
}

static void test_config_validation_boundaries(void)
{
    AGENTSH_CORE core;
    FAKE_PORT port;
    AGENTSH_CORE_CONFIG c;
    AGENTSH_CONFIG msg;
    struct { uint32_t f, t, mf, e, d, mx, p; NTSTATUS want; } cases[] = {
        { 0, 100, 1, 100, 100, 100, 100, STATUS_SUCCESS },
        { 1, 60000, 1000, 100000, 3600000, 3600000, 60000, STATUS_SUCCESS },
        { 2, 5000, 10, 4096, 5000, 5000, 1000, STATUS_INVALID_PARAMETER },
        { 0, 99, 10, 4096, 5000, 5000, 1000, STATUS_INVALID_PARAMETER },
        { 0, 60001, 10, 4096, 5000, 5000, 1000, STATUS_INVALID_PARAMETER },
        { 0, 5000, 0, 4096, 5000, 5000, 1000, STATUS_INVALID_PARAMETER },
        { 0, 5000, 1001, 4096, 5000, 5000, 1000, STATUS_INVALID_PARAMETER },
        { 0, 5000, 10, 99, 5000, 5000, 1000, STATUS_INVALID_PARAMETER },
        { 0, 5000, 10, 100001, 5000, 5000, 1000, STATUS_INVALID_PARAMETER },
        { 0, 5000, 10, 4096, 99, 5000, 1000, STATUS_INVALID_PARAMETER },
        { 0, 5000, 10, 4096, 3600001, 3600001, 1000, STATUS_INVALID_PARAMETER },
        { 0, 5000, 10, 4096, 5000, 99, 1000, STATUS_INVALID_PARAMETER },
        { 0, 5000, 10, 4096, 5000, 3600001, 1000, STATUS_INVALID_PARAMETER },
        { 0, 5000, 10, 4096, 5000, 4999, 1000, STATUS_INVALID_PARAMETER },   /* max < default */
        { 0, 5000, 10, 4096, 5000, 5000, 99, STATUS_INVALID_PARAMETER },
        { 0, 5000, 10, 4096, 5000, 5000, 60001, STATUS_INVALID_PARAMETER },
    };
    unsigned i;
    CoreSetup(&core, &port);
    AgentshCoreGetConfig(&core, &c);
    CHECK_EQ(c.FailMode, FAIL_MODE_OPEN);
    CHECK_EQ(c.PolicyQueryTimeoutMs, 5000);
    CHECK_EQ(c.MaxConsecutiveFailures, 10);
    CHECK_EQ(c.CacheMaxEntries, 4096);
    CHECK_EQ(c.CacheDefaultTTLMs, 5000);
    CHECK_EQ(c.CacheMaxTTLMs, 3600000);
    CHECK_EQ(c.ProbeIntervalMs, 1000);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        AGENTSH_CORE_CONFIG before, after;
        NTSTATUS st;
        AgentshCoreGetConfig(&core, &before);
        st = SendConfig(&core, cases[i].f, cases[i].t, cases[i].mf, cases[i].e, cases[i].d, cases[i].mx, cases[i].p);
        if (st != cases[i].want) { printf("    case %u\n", i); }
        CHECK_EQ(st, cases[i].want);
        AgentshCoreGetConfig(&core, &after);
        if (st == STATUS_SUCCESS) {
            CHECK_EQ(after.CacheMaxEntries, cases[i].e);
            CHECK_EQ(AgentshCacheCapacity(&core.Cache), cases[i].e);
            CHECK_EQ(after.ProbeIntervalMs, cases[i].p);
        } else {
            CHECK(memcmp(&before, &after, sizeof(before)) == 0);   /* rejected whole */
        }
    }
    /* reserved Flags and wrong sizes */
    memset(&msg, 0, sizeof(msg));
    msg.Header.Type = MSG_SET_CONFIG;
    msg.Header.Size = sizeof(msg);
    msg.PolicyQueryTimeoutMs = 5000; msg.MaxConsecutiveFailures = 10; msg.CacheMaxEntries = 4096;
    msg.CacheDefaultTTLMs = 5000; msg.CacheMaxTTLMs = 5000; msg.ProbeIntervalMs = 1000;
    CHECK(Dispatch(&core, &msg, sizeof(msg)) == STATUS_SUCCESS);
    msg.Flags = AGENTSH_CONFIG_FLAG_AUDIT_RESULTS;
    CHECK(Dispatch(&core, &msg, sizeof(msg)) == STATUS_SUCCESS);
    CHECK_EQ(core.Config.Flags, AGENTSH_CONFIG_FLAG_AUDIT_RESULTS);
    msg.Flags = AGENTSH_CONFIG_FLAGS_VALID;
    CHECK(Dispatch(&core, &msg, sizeof(msg)) == STATUS_SUCCESS);
    msg.Flags = 4;                                                   /* an unknown flag */
    CHECK(Dispatch(&core, &msg, sizeof(msg)) == STATUS_INVALID_PARAMETER);
    msg.Flags = 0;
    msg.Header.Size = 44;
    CHECK(Dispatch(&core, &msg, 44) == STATUS_INVALID_PARAMETER);
    msg.Header.Size = 48;
    CHECK(Dispatch(&core, &msg, 47) == STATUS_INVALID_PARAMETER);   /* Size above bytes received */
    CoreTeardown(&core);
}

static void test_session_inheritance_generations(void)
{
    AGENTSH_CORE core;
    FAKE_PORT port;
    AGENTSH_SESSION_REGISTER r;
    AGENTSH_SESSION_UNREGISTER u;
    AGENTSH_USTR img = U("\\Device\\HarddiskVolume3\\bin\\cl.exe");
    AGENTSH_METRICS m;
    UINT64 tok;
    UINT32 root, count;
    CoreSetup(&core, &port);
    /* 100 -> 104 -> 108 -> 112 -> 116 (creator chain); 120 claims parent 116 but is created by 4 */
    CHECK(AgentshCoreProcessCreated(&core, 104, 100, 100, &img));
    CHECK(AgentshCoreProcessCreated(&core, 108, 104, 104, &img));
    CHECK(AgentshCoreProcessCreated(&core, 112, 108, 4, &img));     /* spoofed parent, real creator */
    CHECK(AgentshCoreProcessCreated(&core, 116, 112, 112, &img));
    CHECK(!AgentshCoreProcessCreated(&core, 120, 4, 116, &img));    /* parent spoofed to a session pid */
    CHECK(AgentshSessionLookupProcess(&core.Sessions, 116, &tok));
    CHECK_EQ(tok, 7);
    CHECK(!AgentshSessionLookupProcess(&core.Sessions, 120, NULL));
    CHECK_EQ(DecideFile(&core, 120, FILE_OP_WRITE, "\\x", NULL).Source, AGENTSH_SOURCE_UNTRACKED);
    CHECK_EQ(DecideFile(&core, 116, FILE_OP_WRITE, "\\x", NULL).Source, AGENTSH_SOURCE_BROKER);
    /* a middle generation exits; its children stay in the session, its own children too */
    CHECK(AgentshCoreProcessTerminated(&core, 108, 0));
    CHECK(!AgentshSessionLookupProcess(&core.Sessions, 108, NULL));
    CHECK(AgentshSessionLookupProcess(&core.Sessions, 112, NULL));
    CHECK(!AgentshCoreProcessTerminated(&core, 108, 0));
    CHECK(AgentshSessionQuery(&core.Sessions, 7, &root, &count));
    CHECK_EQ(root, 100);
    CHECK_EQ(count, 4);
    /* a second session; a process of session 7 can't be registered as its root */
    memset(&r, 0, sizeof(r));
    r.Header.Type = MSG_REGISTER_SESSION;
    r.Header.Size = sizeof(r);
    r.SessionToken = 8;
    r.RootProcessId = 112;
    CHECK(Dispatch(&core, &r, sizeof(r)) == STATUS_OBJECT_NAME_COLLISION);
    r.RootProcessId = 200;
    CHECK(Dispatch(&core, &r, sizeof(r)) == STATUS_SUCCESS);
    CHECK(Dispatch(&core, &r, sizeof(r)) == STATUS_SUCCESS);           /* idempotent */
    r.RootProcessId = 204;
    CHECK(Dispatch(&core, &r, sizeof(r)) == STATUS_OBJECT_NAME_COLLISION);
    r.RootProcessId = 0;
    CHECK(Dispatch(&core, &r, sizeof(r)) == STATUS_INVALID_PARAMETER);
    r.RootProcessId = 300; r.SessionToken = 0;
    CHECK(Dispatch(&core, &r, sizeof(r)) == STATUS_INVALID_PARAMETER);
    r.SessionToken = 9; r.Flags = 1;
    CHECK(Dispatch(&core, &r, sizeof(r)) == STATUS_INVALID_PARAMETER);
    CHECK(AgentshCoreProcessCreated(&core, 204, 200, 200, &img));
    DecideFile(&core, 204, FILE_OP_WRITE, "\\s8", NULL);
    GetMetrics(&core, &m);
    CHECK_EQ(m.ActiveSessions, 2);
    CHECK_EQ(m.TrackedProcesses, 6);
    CHECK_EQ(m.CacheEntryCount, 2);
    /* unregister removes the session, its processes and its cached decisions only */
    memset(&u, 0, sizeof(u));
    u.Header.Type = MSG_UNREGISTER_SESSION;
    u.Header.Size = sizeof(u);
    u.SessionToken = 7;
    CHECK(Dispatch(&core, &u, sizeof(u)) == STATUS_SUCCESS);
    CHECK(Dispatch(&core, &u, sizeof(u)) == STATUS_NOT_FOUND);
    GetMetrics(&core, &m);
    CHECK_EQ(m.ActiveSessions, 1);
    CHECK_EQ(m.TrackedProcesses, 2);
    CHECK_EQ(m.CacheEntryCount, 1);
    CHECK_EQ(DecideFile(&core, 116, FILE_OP_WRITE, "\\x", NULL).Source, AGENTSH_SOURCE_UNTRACKED);
    CHECK_EQ(DecideFile(&core, 204, FILE_OP_WRITE, "\\s8", NULL).Source, AGENTSH_SOURCE_CACHE);
    /* pid reuse: a tracked pid created again by an untracked creator leaves the session */
    CHECK(!AgentshCoreProcessCreated(&core, 204, 4, 4, &img));
    CHECK(!AgentshSessionLookupProcess(&core.Sessions, 204, NULL));
    CoreTeardown(&core);
}

static void test_exclusion(void)
{
    AGENTSH_CORE core;
    FAKE_PORT port;
    AGENTSH_METRICS m;
    uint8_t buf[24 + 4 * 70];
    AGENTSH_EXCLUDE_PROCESS *e = (AGENTSH_EXCLUDE_PROCESS *)buf;
    uint32_t *pids = (uint32_t *)(buf + 24);
    uint32_t i;
    CoreSetup(&core, &port);
    memset(buf, 0, sizeof(buf));
    e->Header.Type = MSG_EXCLUDE_PROCESS;
    e->Action = EXCLUDE_ACTION_ADD;
    e->Count = 2;
    e->Header.Size = 24 + 8;
    pids[0] = 100; pids[1] = 500;
    CHECK(Dispatch(&core, buf, e->Header.Size) == STATUS_SUCCESS);
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\x", NULL).Source, AGENTSH_SOURCE_EXCLUDED);
    CHECK(!AgentshCoreShouldCheck(&core, 100, NULL));
    CHECK_EQ(port.Calls, 0);
    e->Action = EXCLUDE_ACTION_ADD; e->Count = 1; e->Header.Size = 28; pids[0] = 600;
    CHECK(Dispatch(&core, buf, 28) == STATUS_SUCCESS);
    GetMetrics(&core, &m);
    CHECK_EQ(m.ExcludedProcesses, 3);
    CHECK_EQ(m.ExcludedOperations, 2);
    e->Action = EXCLUDE_ACTION_REMOVE; e->Count = 2; e->Header.Size = 32; pids[0] = 100; pids[1] = 12345;
    CHECK(Dispatch(&core, buf, 32) == STATUS_SUCCESS);
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\x", NULL).Source, AGENTSH_SOURCE_BROKER);
    CHECK_EQ(AgentshExclusionCount(&core.Exclusion), 2);
    /* replace with 64 distinct pids, then adding one more is rejected whole */
    e->Action = EXCLUDE_ACTION_REPLACE; e->Count = 64; e->Header.Size = 24 + 256;
    for (i = 0; i < 64; i++) pids[i] = 1000 + 4 * i;
    CHECK(Dispatch(&core, buf, e->Header.Size) == STATUS_SUCCESS);
    CHECK_EQ(AgentshExclusionCount(&core.Exclusion), 64);
    e->Action = EXCLUDE_ACTION_ADD; e->Count = 2; e->Header.Size = 32; pids[0] = 1000; pids[1] = 7;
    CHECK(Dispatch(&core, buf, 32) == STATUS_INSUFFICIENT_RESOURCES);
    CHECK_EQ(AgentshExclusionCount(&core.Exclusion), 64);
    CHECK(!AgentshExclusionContains(&core.Exclusion, 7));
    /* count above the maximum, size mismatch, pid 0, bad action */
    e->Action = EXCLUDE_ACTION_REPLACE; e->Count = 65; e->Header.Size = 24 + 260;
    CHECK(Dispatch(&core, buf, e->Header.Size) == STATUS_INVALID_PARAMETER);
    e->Count = 1; e->Header.Size = 32;
    CHECK(Dispatch(&core, buf, 32) == STATUS_INVALID_PARAMETER);
    e->Header.Size = 28; pids[0] = 0;
    CHECK(Dispatch(&core, buf, 28) == STATUS_INVALID_PARAMETER);
    pids[0] = 5; e->Action = 3;
    CHECK(Dispatch(&core, buf, 28) == STATUS_INVALID_PARAMETER);
    /* replace with nothing */
    e->Action = EXCLUDE_ACTION_REPLACE; e->Count = 0; e->Header.Size = 24;
    CHECK(Dispatch(&core, buf, 24) == STATUS_SUCCESS);
    CHECK_EQ(AgentshExclusionCount(&core.Exclusion), 0);
    CoreTeardown(&core);
}

static void test_dispatch_cache_update_ping_metrics(void)
{
    AGENTSH_CORE core;
    FAKE_PORT port;
    AGENTSH_CACHE_UPDATE cu;
    AGENTSH_PING ping;
    AGENTSH_PONG pong;
    AGENTSH_METRICS m;
    UINT32 n;
    uint32_t size;
    void *msg;
    uint8_t small[16];
    AGENTSH_MESSAGE_HEADER gm = { MSG_GET_METRICS, 16, 77 };
    CoreSetup(&core, &port);
    DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\V\\src\\a", NULL);
    DecideReg(&core, 100, REG_OP_OPEN_KEY, "\\REGISTRY\\MACHINE\\SOFTWARE\\A", NULL);
    memset(&cu, 0, sizeof(cu));
    cu.Header.Type = MSG_UPDATE_CACHE;
    cu.Header.Size = sizeof(cu);
    cu.Scope = CACHE_SCOPE_ALL; cu.Kind = AGENTSH_KIND_FILE;
    CHECK(Dispatch(&core, &cu, sizeof(cu)) == STATUS_INVALID_PARAMETER);
    cu.Kind = 0; cu.SessionToken = 7;
    CHECK(Dispatch(&core, &cu, sizeof(cu)) == STATUS_INVALID_PARAMETER);
    cu.Scope = CACHE_SCOPE_SESSION; cu.SessionToken = 0;
    CHECK(Dispatch(&core, &cu, sizeof(cu)) == STATUS_INVALID_PARAMETER);
    cu.Scope = CACHE_SCOPE_PATH_PREFIX;
    CHECK(Dispatch(&core, &cu, sizeof(cu)) == STATUS_INVALID_PARAMETER);   /* prefix required */
    cu.Scope = 3;
    CHECK(Dispatch(&core, &cu, sizeof(cu)) == STATUS_INVALID_PARAMETER);
    msg = BuildWithString(MSG_UPDATE_CACHE, 40, 32, "\\device\\v\\SRC", &size);
    ((AGENTSH_CACHE_UPDATE *)msg)->Scope = CACHE_SCOPE_PATH_PREFIX;
    ((AGENTSH_CACHE_UPDATE *)msg)->Kind = 3;
    CHECK(Dispatch(&core, msg, size) == STATUS_INVALID_PARAMETER);
    ((AGENTSH_CACHE_UPDATE *)msg)->Kind = AGENTSH_KIND_FILE;
    CHECK(Dispatch(&core, msg, size) == STATUS_SUCCESS);
    free(msg);
    GetMetrics(&core, &m);
    CHECK_EQ(m.CacheEntryCount, 1);
    cu.Scope = CACHE_SCOPE_SESSION; cu.SessionToken = 7;
    CHECK(Dispatch(&core, &cu, sizeof(cu)) == STATUS_SUCCESS);
    GetMetrics(&core, &m);
    CHECK_EQ(m.CacheEntryCount, 0);
    /* PING -> PONG */
    memset(&ping, 0, sizeof(ping));
    ping.Header.Type = MSG_PING; ping.Header.Size = sizeof(ping); ping.Header.RequestId = 5; ping.Timestamp = 0x1122334455667788ull;
    CHECK(AgentshCoreDispatch(&core, &ping, sizeof(ping), &pong, sizeof(pong), &n) == STATUS_SUCCESS);
    CHECK_EQ(n, sizeof(pong));
    CHECK_EQ(pong.Header.Type, MSG_PONG);
    CHECK_EQ(pong.Header.Size, 32);
    CHECK_EQ(pong.Header.RequestId, 5);
    CHECK_EQ(pong.ProtocolVersion, AGENTSH_PROTOCOL_VERSION);
    CHECK_EQ(pong.ClientProcessId, 4242);
    CHECK_EQ(pong.Timestamp, 0x1122334455667788ull);
    CHECK(AgentshCoreDispatch(&core, &ping, sizeof(ping), small, sizeof(small), &n) == STATUS_BUFFER_TOO_SMALL);
    CHECK(AgentshCoreDispatch(&core, &gm, sizeof(gm), small, sizeof(small), &n) == STATUS_BUFFER_TOO_SMALL);
    CHECK_EQ(n, 0);
    /* metrics: every field set */
    CHECK(AgentshCoreDispatch(&core, &gm, sizeof(gm), &m, sizeof(m), &n) == STATUS_SUCCESS);
    CHECK_EQ(m.Header.Type, MSG_METRICS_REPLY);
    CHECK_EQ(m.Header.Size, 184);
    CHECK_EQ(m.Header.RequestId, 77);
    CHECK_EQ(m.CacheCapacity, 4096);
    CHECK_EQ(m.ActiveSessions, 1);
    CHECK_EQ(m.TrackedProcesses, 1);
    CHECK_EQ(m.ClientConnected, 1);
    CHECK_EQ(m.FailMode, FAIL_MODE_OPEN);
    CHECK_EQ(m.Reserved, 0);
    CHECK_EQ(m.FilePolicyQueries, 1);
    CHECK_EQ(m.RegistryPolicyQueries, 1);
    CHECK_EQ(AgentshValidateMessage(&m, sizeof(m), NULL), STATUS_SUCCESS);
    /* driver -> user types are not accepted from the client */
    {
        AGENTSH_POLICY_RESPONSE r;
        memset(&r, 0, sizeof(r));
        r.Header.Type = MSG_POLICY_RESPONSE; r.Header.Size = 32;
        CHECK(Dispatch(&core, &r, 32) == STATUS_NOT_SUPPORTED);
    }
    CoreTeardown(&core);
}

static void test_notifications(void)
{
    AGENTSH_CORE core;
    FAKE_PORT port;
    AGENTSH_USTR img = U("\\Device\\HarddiskVolume3\\bin\\cl.exe"), path = U("\\REGISTRY\\MACHINE\\X"), val = U("v");
    AGENTSH_PROCESS_EVENT ev;
    UINT64 sent, dropped, failed;
    UINT32 queued;
    CoreSetup(&core, &port);
    CHECK(AgentshCoreProcessCreated(&core, 104, 100, 100, &img));
    CHECK(AgentshCoreRunNotifications(&core, 10));
    CHECK_EQ(port.Notifications, 1);
    CHECK_EQ(port.LastType, MSG_PROCESS_CREATED);
    memcpy(&ev, port.LastMessage, sizeof(ev));
    CHECK_EQ(ev.ProcessId, 104);
    CHECK_EQ(ev.CreatorProcessId, 100);
    CHECK_EQ(ev.SessionToken, 7);
    CHECK_EQ(ev.ImagePath.Length, img.Length);
    /* outcomes of registry operations only when the config asks for them */
    CHECK(!AgentshCoreAuditResultsWanted(&core));
    CHECK(!AgentshCoreAudit(&core, 104, AGENTSH_KIND_REGISTRY, REG_OP_SET_VALUE, 0, &path, &val));
    core.Config.Flags = AGENTSH_CONFIG_FLAG_AUDIT_RESULTS;
    CHECK(AgentshCoreAuditResultsWanted(&core));
    CHECK(AgentshCoreAudit(&core, 104, AGENTSH_KIND_REGISTRY, REG_OP_SET_VALUE, 0, &path, &val));
    CHECK(!AgentshCoreAudit(&core, 999, AGENTSH_KIND_REGISTRY, REG_OP_SET_VALUE, 0, &path, &val));
    CHECK(AgentshCoreProcessTerminated(&core, 104, 3));
    CHECK(AgentshCoreRunNotifications(&core, 10));
    CHECK_EQ(port.Notifications, 3);
    CHECK_EQ(port.LastType, MSG_PROCESS_TERMINATED);
    memcpy(&ev, port.LastMessage, sizeof(ev));
    CHECK_EQ(ev.ExitStatus, 3);
    /* no client: dropped and counted */
    AgentshCoreClientDisconnected(&core);
    CHECK(AgentshCoreProcessCreated(&core, 108, 100, 100, &img));
    AgentshCoreNotifyStats(&core, &sent, &dropped, &failed, &queued);
    CHECK_EQ(sent, 3);
    CHECK_EQ(dropped, 1);
    CHECK_EQ(queued, 0);
    AgentshCoreStopNotifications(&core);
    CHECK(!AgentshCoreRunNotifications(&core, 10));
    CoreTeardown(&core);
}

/* The last notification sent, as a decision event whose strings are checked against the rules. */
static int LastDecisionEvent(FAKE_PORT *Port, AGENTSH_DECISION_EVENT *Ev, AGENTSH_USTR *Path, AGENTSH_USTR *S1)
{
    if (Port->LastType != MSG_DECISION_EVENT || Port->LastSize > sizeof(Port->LastMessage) ||
        AgentshValidateMessage(Port->LastMessage, Port->LastSize, NULL) != STATUS_SUCCESS) {
        return 0;
    }
    memcpy(Ev, Port->LastMessage, sizeof(*Ev));
    *Path = AgentshMessageString(Port->LastMessage, &Ev->Path);
    *S1 = AgentshMessageString(Port->LastMessage, &Ev->String1);
    return 1;
}

/* Runs the notification worker once; then the last notification sent, as a decision event. */
static int SentReport(AGENTSH_CORE *Core, FAKE_PORT *Port, AGENTSH_DECISION_EVENT *Ev, AGENTSH_USTR *Path,
                      AGENTSH_USTR *S1)
{
    return AgentshCoreRunNotifications(Core, 1) && LastDecisionEvent(Port, Ev, Path, S1);
}

static int UstrIs(AGENTSH_USTR S, const char *Ascii)
{
    AGENTSH_USTR e = U(Ascii);
    return S.Length == e.Length && (S.Length == 0 || memcmp(S.Buffer, e.Buffer, 2u * S.Length) == 0);
}

static void test_decision_events(void)
{
    AGENTSH_CORE core;
    FAKE_PORT port;
    AGENTSH_VERDICT v;
    AGENTSH_DECISION_EVENT ev;
    AGENTSH_USTR path, s1;
    UINT64 sent, dropped, failed;
    UINT32 queued;
    int i, reported = 0;
    CoreSetup(&core, &port);
    port.Decision = DECISION_DENY;
    /* not asked for: a repeated deny sends nothing */
    DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\secret", NULL);
    v = DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\secret", NULL);
    CHECK_EQ(v.Source, AGENTSH_SOURCE_CACHE);
    CHECK_EQ(v.Reason, DECISION_REASON_CACHED);
    CHECK_EQ(v.Reported, 0);
    CHECK(AgentshCoreRunNotifications(&core, 1));
    CHECK_EQ(port.Notifications, 0);

    core.Config.Flags = AGENTSH_CONFIG_FLAG_DECISION_EVENTS;
    /* the broker's own answer is audited by the broker: no event */
    port.Decision = DECISION_DENY;
    v = DecideFile(&core, 100, FILE_OP_RENAME, "\\Device\\HarddiskVolume3\\a", "\\Device\\HarddiskVolume3\\b");
    CHECK_EQ(v.Source, AGENTSH_SOURCE_BROKER);
    CHECK_EQ(v.Reported, 0);
    /* the same deny from the cache: reported with the operation's strings */
    v = DecideFile(&core, 100, FILE_OP_RENAME, "\\Device\\HarddiskVolume3\\a", "\\Device\\HarddiskVolume3\\b");
    CHECK_EQ(v.Source, AGENTSH_SOURCE_CACHE);
    CHECK_EQ(v.Reported, 1);
    CHECK(AgentshCoreRunNotifications(&core, 1));
    CHECK_EQ(port.Notifications, 1);
    CHECK(LastDecisionEvent(&port, &ev, &path, &s1));
    CHECK_EQ(ev.SessionToken, 7);
    CHECK_EQ(ev.ProcessId, 100);
    CHECK_EQ(ev.Kind, AGENTSH_KIND_FILE);
    CHECK_EQ(ev.Operation, FILE_OP_RENAME);
    CHECK_EQ(ev.Decision, DECISION_DENY);
    CHECK_EQ(ev.Source, DECISION_SOURCE_CACHE);
    CHECK_EQ(ev.Reason, DECISION_REASON_CACHED);
    CHECK_EQ(ev.QueryStatus, 0);
    CHECK_EQ(ev.Suppressed, 0);
    CHECK(UstrIs(path, "\\Device\\HarddiskVolume3\\a"));
    CHECK(UstrIs(s1, "\\Device\\HarddiskVolume3\\b"));
    /* an allow from the cache is a plain cache hit: nothing */
    port.Decision = DECISION_ALLOW;
    DecideFile(&core, 100, FILE_OP_READ, "\\Device\\HarddiskVolume3\\ok", NULL);
    v = DecideFile(&core, 100, FILE_OP_READ, "\\Device\\HarddiskVolume3\\ok", NULL);
    CHECK_EQ(v.Source, AGENTSH_SOURCE_CACHE);
    CHECK_EQ(v.Reported, 0);
    /* a registry deny from the cache carries the value name */
    port.Decision = DECISION_DENY;
    DecideReg(&core, 100, REG_OP_SET_VALUE, "\\REGISTRY\\MACHINE\\SOFTWARE\\Run", "evil");
    CHECK_EQ(DecideReg(&core, 104, REG_OP_SET_VALUE, "\\REGISTRY\\MACHINE\\SOFTWARE\\Run", "evil").Reported, 0);
    CHECK(AgentshCoreProcessCreated(&core, 104, 100, 100, NULL));
    v = DecideReg(&core, 104, REG_OP_SET_VALUE, "\\registry\\machine\\software\\run", "EVIL");
    CHECK_EQ(v.Reported, 1);
    CHECK(AgentshCoreRunNotifications(&core, 1));
    CHECK_EQ(port.Notifications, 3); /* + PROCESS_CREATED */
    CHECK(LastDecisionEvent(&port, &ev, &path, &s1));
    CHECK_EQ(ev.ProcessId, 104);
    CHECK_EQ(ev.Kind, AGENTSH_KIND_REGISTRY);
    CHECK_EQ(ev.Operation, REG_OP_SET_VALUE);
    CHECK(UstrIs(path, "\\registry\\machine\\software\\run"));
    CHECK(UstrIs(s1, "EVIL"));
    /* a failed query answered by the fail mode (closed): reported with the status */
    CHECK(SendConfig(&core, FAIL_MODE_CLOSED, 100, 1, 4096, 5000, 3600000, 1000) == STATUS_SUCCESS);
    CHECK_EQ(core.Config.Flags, 0); /* SendConfig sends Flags 0: asked again below */
    core.Config.Flags = AGENTSH_CONFIG_FLAG_DECISION_EVENTS;
    port.Mode = FAKE_TIMEOUT;
    v = DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\t", NULL);
    CHECK_EQ(v.Source, AGENTSH_SOURCE_FAILMODE);
    CHECK_EQ(v.Reported, 1);
    CHECK(SentReport(&core, &port, &ev, &path, &s1));
    CHECK_EQ(ev.Source, DECISION_SOURCE_FAIL_MODE);
    CHECK_EQ(ev.Reason, DECISION_REASON_QUERY_FAILED);
    CHECK_EQ(ev.QueryStatus, STATUS_TIMEOUT);
    CHECK_EQ(ev.Decision, DECISION_DENY);
    /* FAILING (threshold 1): the next query is answered at once */
    v = DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\u", NULL);
    CHECK_EQ(v.Reason, DECISION_REASON_FAILING);
    CHECK_EQ(v.Reported, 1);
    CHECK(SentReport(&core, &port, &ev, &path, &s1));
    CHECK_EQ(ev.Reason, DECISION_REASON_FAILING);
    CHECK_EQ(ev.QueryStatus, 0);
    CHECK(UstrIs(path, "\\Device\\HarddiskVolume3\\u"));
    CHECK_EQ(port.Notifications, 5);
    /* no client: held, then sent to the next client */
    AgentshCoreClientDisconnected(&core);
    v = DecideFile(&core, 100, FILE_OP_DELETE, "\\Device\\HarddiskVolume3\\while-down", NULL);
    CHECK_EQ(v.Reason, DECISION_REASON_NO_CLIENT);
    CHECK_EQ(v.Reported, 1);
    CHECK(AgentshCoreRunNotifications(&core, 1));
    CHECK_EQ(port.Notifications, 5);
    AgentshCoreNotifyStats(&core, &sent, &dropped, &failed, &queued);
    CHECK_EQ(queued, 1);
    AgentshCoreClientConnected(&core, 2);
    CHECK(AgentshCoreRunNotifications(&core, 1));
    CHECK_EQ(port.Notifications, 6);
    CHECK(LastDecisionEvent(&port, &ev, &path, &s1));
    CHECK_EQ(ev.Reason, DECISION_REASON_NO_CLIENT);
    CHECK_EQ(ev.Operation, FILE_OP_DELETE);
    CHECK(UstrIs(path, "\\Device\\HarddiskVolume3\\while-down"));
    /* rate limit: AGENTSH_DECISION_EVENTS_PER_SECOND in one second, the rest counted and carried */
    port.Mode = FAKE_ANSWER;
    port.Decision = DECISION_DENY;
    DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\loop", NULL);
    gFakeNow += 1000; /* a new window */
    for (i = 0; i < (int)AGENTSH_DECISION_EVENTS_PER_SECOND + 7; i++) {
        reported += (int)DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\loop", NULL).Reported;
    }
    CHECK_EQ(reported, AGENTSH_DECISION_EVENTS_PER_SECOND);
    gFakeNow += 999;
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\loop", NULL).Reported, 0);
    CHECK(AgentshCoreRunNotifications(&core, 1));
    CHECK_EQ(port.Notifications, 6 + (int)AGENTSH_DECISION_EVENTS_PER_SECOND);
    CHECK(LastDecisionEvent(&port, &ev, &path, &s1));
    CHECK_EQ(ev.Suppressed, 0);
    gFakeNow += 1;
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\loop", NULL).Reported, 1);
    CHECK(SentReport(&core, &port, &ev, &path, &s1));
    CHECK_EQ(ev.Suppressed, 8);
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\loop", NULL).Reported, 1);
    CHECK(SentReport(&core, &port, &ev, &path, &s1));
    CHECK_EQ(ev.Suppressed, 0);
    /* a report lost on the way (the send timed out) is carried, with what it carried, by the next */
    gFakeNow += 1000;
    for (i = 0; i < (int)AGENTSH_DECISION_EVENTS_PER_SECOND + 2; i++) {
        DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\loop", NULL);
    }
    port.NotifyStatus = STATUS_TIMEOUT;
    gFakeNow += 1000;
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\loop", NULL).Reported, 1);
    sent = port.Notifications;
    CHECK(AgentshCoreRunNotifications(&core, 1)); /* the 1000 of the window before and this one: lost */
    CHECK_EQ(port.Notifications, sent);
    port.NotifyStatus = STATUS_SUCCESS;
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\loop", NULL).Reported, 1);
    CHECK(SentReport(&core, &port, &ev, &path, &s1));
    CHECK_EQ(ev.Suppressed, AGENTSH_DECISION_EVENTS_PER_SECOND + 2 + 1);
    CoreTeardown(&core);
}

/* While no client is connected, held reports are bounded by the queue's bytes; the rest are carried. */
/* Decision events wake the notification worker only by the batch (AGENTSH_NOTIFY_LAZY_BATCH); the
 * worker's wait ending sends the ones before; a process event wakes it at once. */
static void test_decision_events_wake_lazily(void)
{
    AGENTSH_CORE core;
    FAKE_PORT port;
    AGENTSH_VERDICT v;
    AGENTSH_USTR img = U("\\Device\\HarddiskVolume3\\tool.exe");
    UINT32 i;
    CoreSetup(&core, &port);
    core.Config.Flags = AGENTSH_CONFIG_FLAG_DECISION_EVENTS;
    port.Decision = DECISION_DENY;
    (void)DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\secret", NULL);
    AgentshEventReset(&core.Notify.Wake);
    v = DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\secret", NULL);
    CHECK_EQ(v.Reported, 1);
    CHECK(!AgentshEventWait(&core.Notify.Wake, 0)); /* one report: no wake-up */
    CHECK(AgentshCoreRunNotifications(&core, 1));   /* the wait's end sends it */
    CHECK_EQ(port.Notifications, 1);
    for (i = 1; i < AGENTSH_NOTIFY_LAZY_BATCH; i++) {
        v = DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\secret", NULL);
        CHECK_EQ(v.Reported, 1);
    }
    CHECK(!AgentshEventWait(&core.Notify.Wake, 0));
    v = DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\secret", NULL);
    CHECK_EQ(v.Reported, 1);
    CHECK(AgentshEventWait(&core.Notify.Wake, 0)); /* the batch is full: the worker is woken */
    CHECK(AgentshCoreRunNotifications(&core, 0));
    CHECK_EQ(port.Notifications, 1 + AGENTSH_NOTIFY_LAZY_BATCH);
    CHECK(!AgentshEventWait(&core.Notify.Wake, 0));
    CHECK(AgentshCoreProcessCreated(&core, 104, 100, 100, &img));
    CHECK(AgentshEventWait(&core.Notify.Wake, 0)); /* a process event wakes it at once */
    CHECK(AgentshCoreRunNotifications(&core, 0));
    CHECK_EQ(port.Notifications, 2 + AGENTSH_NOTIFY_LAZY_BATCH);
    CoreTeardown(&core);
}

static void test_decision_events_held_bounded(void)
{
    static uint16_t big[32767];
    AGENTSH_CORE core;
    FAKE_PORT port;
    AGENTSH_DECIDE_REQUEST q;
    AGENTSH_VERDICT v;
    AGENTSH_DECISION_EVENT ev;
    AGENTSH_USTR path, s1;
    UINT64 sent, dropped, failed;
    UINT32 queued, each = 88u + 2u * 32768u, fit = AGENTSH_NOTIFY_QUEUE_MAX_BYTES / each;
    int i, reported = 0, attempts = (int)fit + 5;
    CoreSetup(&core, &port);
    core.Config.Flags = AGENTSH_CONFIG_FLAG_DECISION_EVENTS;
    AgentshCoreClientDisconnected(&core);
    memset(big, 'a', sizeof(big));
    memset(&q, 0, sizeof(q));
    q.Kind = AGENTSH_KIND_FILE;
    q.ProcessId = 100;
    q.Operation = FILE_OP_WRITE;
    q.Strings[0] = U16(big, 32767);
    for (i = 0; i < attempts; i++) {
        AgentshCoreDecide(&core, &q, &v);
        CHECK_EQ(v.Reason, DECISION_REASON_NO_CLIENT);
        reported += (int)v.Reported;
    }
    CHECK_EQ(reported, fit);
    AgentshCoreNotifyStats(&core, &sent, &dropped, &failed, &queued);
    CHECK_EQ(queued, fit);
    CHECK_EQ(core.Notify.Bytes, fit * each);
    AgentshCoreClientConnected(&core, 2);
    CHECK(AgentshCoreRunNotifications(&core, 1));
    CHECK_EQ(port.Notifications, fit);
    CHECK_EQ(core.Notify.Bytes, 0);
    q.Strings[0] = U("\\Device\\HarddiskVolume3\\after");
    AgentshCoreClientDisconnected(&core);
    AgentshCoreDecide(&core, &q, &v);
    AgentshCoreClientConnected(&core, 3);
    CHECK(SentReport(&core, &port, &ev, &path, &s1));
    CHECK_EQ(ev.Suppressed, attempts - (int)fit);
    CHECK(UstrIs(path, "\\Device\\HarddiskVolume3\\after"));
    CoreTeardown(&core);
}

static void test_decision_counts(void)
{
    AGENTSH_CORE core;
    FAKE_PORT port;
    AGENTSH_MESSAGE_HEADER h = { MSG_GET_DECISION_COUNTS, 16, 3 };
    uint8_t out[AGENTSH_DECISION_COUNTS_MAX_SIZE];
    AGENTSH_DECISION_COUNTS head;
    UINT32 n = 0;
    CoreSetup(&core, &port);
    /* nothing decided alone yet: no entries */
    CHECK(AgentshCoreDispatch(&core, &h, sizeof(h), out, sizeof(out), &n) == STATUS_SUCCESS);
    CHECK_EQ(n, 24);
    memcpy(&head, out, sizeof(head));
    CHECK_EQ(head.Header.Type, MSG_DECISION_COUNTS_REPLY);
    CHECK_EQ(head.Header.Size, 24);
    CHECK_EQ(head.Header.RequestId, 3);
    CHECK_EQ(head.Count, 0);
    CHECK(AgentshCoreDispatch(&core, &h, sizeof(h), out, AGENTSH_DECISION_COUNTS_MAX_SIZE - 1, &n) ==
          STATUS_BUFFER_TOO_SMALL);
    CHECK_EQ(n, 0);
    CHECK(AgentshCoreDispatch(&core, &h, sizeof(h), NULL, 0, &n) == STATUS_BUFFER_TOO_SMALL);
    /* the broker's answers are counted by the broker, untracked processes by nobody */
    port.Decision = DECISION_DENY;
    DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\secret", NULL);
    DecideFile(&core, 999, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\secret", NULL);
    CHECK_EQ(DecisionCount(&core, DECISION_SOURCE_CACHE, AGENTSH_KIND_FILE, FILE_OP_WRITE, DECISION_DENY), 0);
    /* cache hits, by kind, operation and decision */
    DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\secret", NULL);
    DecideFile(&core, 100, FILE_OP_WRITE, "\\DEVICE\\HARDDISKVOLUME3\\SECRET", NULL);
    port.Decision = DECISION_ALLOW;
    DecideFile(&core, 100, FILE_OP_READ, "\\Device\\HarddiskVolume3\\ok", NULL);
    DecideFile(&core, 100, FILE_OP_READ, "\\Device\\HarddiskVolume3\\ok", NULL);
    DecideReg(&core, 100, REG_OP_QUERY_VALUE, "\\REGISTRY\\MACHINE\\SOFTWARE\\A", "v");
    DecideReg(&core, 100, REG_OP_QUERY_VALUE, "\\REGISTRY\\MACHINE\\SOFTWARE\\A", "v");
    CHECK_EQ(DecisionCount(&core, DECISION_SOURCE_CACHE, AGENTSH_KIND_FILE, FILE_OP_WRITE, DECISION_DENY), 2);
    CHECK_EQ(DecisionCount(&core, DECISION_SOURCE_CACHE, AGENTSH_KIND_FILE, FILE_OP_WRITE, DECISION_ALLOW), 0);
    CHECK_EQ(DecisionCount(&core, DECISION_SOURCE_CACHE, AGENTSH_KIND_FILE, FILE_OP_READ, DECISION_ALLOW), 1);
    CHECK_EQ(DecisionCount(&core, DECISION_SOURCE_CACHE, AGENTSH_KIND_REGISTRY, REG_OP_QUERY_VALUE, DECISION_ALLOW),
             1);
    /* fail mode: no client (open: allow), then a failed query (closed: deny) */
    AgentshCoreClientDisconnected(&core);
    DecideFile(&core, 100, FILE_OP_DELETE, "\\Device\\HarddiskVolume3\\x", NULL);
    DecideReg(&core, 100, REG_OP_SET_VALUE, "\\REGISTRY\\MACHINE\\SOFTWARE\\B", "v");
    AgentshCoreClientConnected(&core, 4242);
    CHECK(SendConfig(&core, FAIL_MODE_CLOSED, 100, 10, 4096, 5000, 3600000, 1000) == STATUS_SUCCESS);
    port.Mode = FAKE_TIMEOUT;
    DecideFile(&core, 100, FILE_OP_DELETE, "\\Device\\HarddiskVolume3\\y", NULL);
    CHECK_EQ(DecisionCount(&core, DECISION_SOURCE_FAIL_MODE, AGENTSH_KIND_FILE, FILE_OP_DELETE, DECISION_ALLOW), 1);
    CHECK_EQ(DecisionCount(&core, DECISION_SOURCE_FAIL_MODE, AGENTSH_KIND_FILE, FILE_OP_DELETE, DECISION_DENY), 1);
    CHECK_EQ(DecisionCount(&core, DECISION_SOURCE_FAIL_MODE, AGENTSH_KIND_REGISTRY, REG_OP_SET_VALUE,
                           DECISION_ALLOW), 1);
    /* the fail-mode slots and FailModeDecisions agree */
    {
        AGENTSH_METRICS m;
        UINT64 failTotal = 0;
        UINT32 i;
        GetMetrics(&core, &m);
        for (i = 0; i < AGENTSH_DECISION_COUNT_SLOTS; i++) {
            failTotal += i >= AGENTSH_DECISION_COUNT_SLOTS / 2 ? core.DecisionCounts[i] : 0;
        }
        CHECK_EQ(failTotal, m.FailModeDecisions);
        CHECK_EQ(m.CacheHitCount, 4);
    }
    /* the reply's shape: Count entries, Size 24 + 24 * Count, validated both ways */
    CHECK(AgentshCoreDispatch(&core, &h, sizeof(h), out, sizeof(out), &n) == STATUS_SUCCESS);
    memcpy(&head, out, sizeof(head));
    CHECK_EQ(head.Count, 6);
    CHECK_EQ(n, 24 + 6 * 24);
    CHECK_EQ(AgentshValidateMessage(out, n, NULL), STATUS_SUCCESS);
    ((AGENTSH_DECISION_COUNTS *)out)->Count = 5;
    CHECK_EQ(AgentshValidateMessage(out, n, NULL), STATUS_INVALID_PARAMETER);
    ((AGENTSH_DECISION_COUNTS *)out)->Count = 6;
    {
        /* one more than the slots, in a buffer that holds it: refused for its Count */
        static uint8_t big[24 + 24 * (AGENTSH_DECISION_COUNT_SLOTS + 1)];
        memcpy(big, out, n);
        ((AGENTSH_DECISION_COUNTS *)big)->Count = AGENTSH_DECISION_COUNT_SLOTS + 1;
        ((AGENTSH_DECISION_COUNTS *)big)->Header.Size = sizeof(big);
        CHECK_EQ(AgentshValidateMessage(big, sizeof(big), NULL), STATUS_INVALID_PARAMETER);
        ((AGENTSH_DECISION_COUNTS *)big)->Count = 6;
        ((AGENTSH_DECISION_COUNTS *)big)->Header.Size = n;
        CHECK_EQ(AgentshValidateMessage(big, n, NULL), STATUS_SUCCESS);
    }
    {
        /* entries: an unknown value, a zero count, two in the wrong order are refused */
        AGENTSH_DECISION_COUNT *e = (AGENTSH_DECISION_COUNT *)(out + 24);
        AGENTSH_DECISION_COUNT keep = e[0], second = e[1];
        e[0].Source = 3;
        CHECK_EQ(AgentshValidateMessage(out, n, NULL), STATUS_INVALID_PARAMETER);
        e[0] = keep; e[0].Kind = 3;
        CHECK_EQ(AgentshValidateMessage(out, n, NULL), STATUS_INVALID_PARAMETER);
        e[0] = keep; e[0].Operation = 8;
        CHECK_EQ(AgentshValidateMessage(out, n, NULL), STATUS_INVALID_PARAMETER);
        e[0] = keep; e[0].Decision = DECISION_PENDING;
        CHECK_EQ(AgentshValidateMessage(out, n, NULL), STATUS_INVALID_PARAMETER);
        e[0] = keep; e[0].Count = 0;
        CHECK_EQ(AgentshValidateMessage(out, n, NULL), STATUS_INVALID_PARAMETER);
        e[0] = second; e[1] = keep;
        CHECK_EQ(AgentshValidateMessage(out, n, NULL), STATUS_INVALID_PARAMETER);
        e[1] = second; e[0] = second;
        CHECK_EQ(AgentshValidateMessage(out, n, NULL), STATUS_INVALID_PARAMETER);
        e[0] = keep;
        CHECK_EQ(AgentshValidateMessage(out, n, NULL), STATUS_SUCCESS);
    }
    /* a reply is not accepted from the client, and the request is the header alone */
    CHECK(Dispatch(&core, out, n) == STATUS_NOT_SUPPORTED);
    {
        AGENTSH_PING longer;
        memset(&longer, 0, sizeof(longer));
        longer.Header.Type = MSG_GET_DECISION_COUNTS;
        longer.Header.Size = sizeof(longer);
        CHECK(AgentshCoreDispatch(&core, &longer, sizeof(longer), out, sizeof(out), &n) == STATUS_INVALID_PARAMETER);
    }
    CoreTeardown(&core);
}

static void test_alloc_failure_paths(void)
{
    AGENTSH_CORE core;
    FAKE_PORT port;
    AGENTSH_VERDICT v;
    int k;
    CoreSetup(&core, &port);
    CHECK(SendConfig(&core, FAIL_MODE_CLOSED, 5000, 10, 4096, 5000, 3600000, 1000) == STATUS_SUCCESS);
    /* failing the k-th allocation inside a decision never crashes and never allows by accident */
    for (k = 0; k < 4; k++) {
        char p[32];
        snprintf(p, sizeof p, "\\af%d", k);
        AgentshShimFailAllocAfter(k);
        v = DecideFile(&core, 100, FILE_OP_WRITE, p, NULL);
        AgentshShimFailAllocAfter(-1);
        CHECK(v.Source == AGENTSH_SOURCE_FAILMODE || v.Source == AGENTSH_SOURCE_BROKER);
        if (v.Source == AGENTSH_SOURCE_FAILMODE) CHECK_EQ(v.Decision, DECISION_DENY);
    }
    CoreTeardown(&core);
}

const TEST_CASE gCoreTests[] = {
    { "decide_sources_ttl_default_cap_nocache_pending", test_decide_sources_and_ttl },
    { "failmode_threshold_immediate_probe_recovery", test_failmode_transitions },
    { "failmode_failure_kinds", test_failmode_failure_kinds },
    { "failmode_no_client_reconnect_shutdown", test_failmode_no_client_and_reconnect },
    { "config_validation_boundaries", test_config_validation_boundaries },
    { "session_inheritance_generations_unregister", test_session_inheritance_generations },
    { "exclusion_add_remove_replace_limits", test_exclusion },
    { "dispatch_cache_update_ping_metrics", test_dispatch_cache_update_ping_metrics },
    { "notifications_process_audit", test_notifications },
    { "allocation_failure_paths", test_alloc_failure_paths },
    { "decision_events_cache_failmode_held_rate_limited", test_decision_events },
    { "decision_events_held_bounded_by_bytes", test_decision_events_held_bounded },
    { "decision_events_wake_the_worker_by_the_batch", test_decision_events_wake_lazily },
    { "decision_counts_by_source_kind_operation", test_decision_counts },
    { NULL, NULL }
};
