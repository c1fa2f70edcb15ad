/* test_collapse.c - in-flight collapse with concurrent threads, and concurrency smoke tests. */
#include <unistd.h>
#include "test.h"

typedef struct { AGENTSH_CORE *Core; const char *Path; AGENTSH_VERDICT V; uint32_t Pid; } WORKER;

static void *DecideThread(void *Arg)
{
    WORKER *w = (WORKER *)Arg;
    w->V = DecideFile(w->Core, w->Pid ? w->Pid : 100, FILE_OP_WRITE, w->Path, NULL);
    return NULL;
}

static void WaitCalls(FAKE_PORT *P, int N)
{
    int i;
    for (i = 0; i < 2000 && __atomic_load_n(&P->Calls, __ATOMIC_SEQ_CST) < N; i++) usleep(1000);
}

static void WaitCollapsed(AGENTSH_CORE *C, uint64_t N)
{
    int i;
    for (i = 0; i < 2000 && AgentshAtomicLoad64(&C->Cache.Collapsed) < N; i++) usleep(1000);
}

static void test_collapse_identical_queries(void)
{
    enum { N = 8 };
    AGENTSH_CORE core;
    FAKE_PORT port;
    pthread_t t[N];
    WORKER w[N];
    AGENTSH_METRICS m;
    int i, collapsed = 0;
    CoreSetup(&core, &port);
    port.Block = 1;
    port.Decision = DECISION_DENY;
    for (i = 0; i < N; i++) {
        w[i].Core = &core; w[i].Path = "\\Device\\V\\same"; w[i].Pid = 0;
        pthread_create(&t[i], NULL, DecideThread, &w[i]);
        if (i == 0) WaitCalls(&port, 1);
    }
    WaitCollapsed(&core, N - 1);
    CHECK_EQ(port.Calls, 1);                 /* one query on the wire */
    FakePortRelease(&port);
    for (i = 0; i < N; i++) pthread_join(t[i], NULL);
    for (i = 0; i < N; i++) {
        CHECK_EQ(w[i].V.Decision, DECISION_DENY);
        CHECK_EQ(w[i].V.Source, AGENTSH_SOURCE_BROKER);
        collapsed += (int)w[i].V.Collapsed;
    }
    CHECK_EQ(collapsed, N - 1);
    GetMetrics(&core, &m);
    CHECK_EQ(m.CacheCollapsedCount, N - 1);
    CHECK_EQ(m.FilePolicyQueries, 1);
    CHECK_EQ(core.Cache.InFlightCount, 0);
    /* the waiters took the broker's answer without asking it: counted by the driver, as its cache's */
    CHECK_EQ(DecisionCount(&core, DECISION_SOURCE_CACHE, AGENTSH_KIND_FILE, FILE_OP_WRITE, DECISION_DENY), N - 1);
    /* different keys are not collapsed */
    port.Block = 0;
    CHECK_EQ(DecideFile(&core, 100, FILE_OP_WRITE, "\\Device\\V\\same", NULL).Source, AGENTSH_SOURCE_CACHE);
    CoreTeardown(&core);
}

static void test_collapse_owner_failed(void)
{
    enum { N = 4 };
    AGENTSH_CORE core;
    FAKE_PORT port;
    pthread_t t[N];
    WORKER w[N];
    AGENTSH_METRICS m;
    int i;
    CoreSetup(&core, &port);
    core.Config.Flags = AGENTSH_CONFIG_FLAG_DECISION_EVENTS;
    port.Block = 1;
    for (i = 0; i < N; i++) {
        w[i].Core = &core; w[i].Path = "\\Device\\V\\failing"; w[i].Pid = 0;
        pthread_create(&t[i], NULL, DecideThread, &w[i]);
        if (i == 0) WaitCalls(&port, 1);
    }
    WaitCollapsed(&core, N - 1);
    port.Mode = FAKE_TIMEOUT;                 /* the query waited on fails: fail mode (open) answers */
    FakePortRelease(&port);
    for (i = 0; i < N; i++) pthread_join(t[i], NULL);
    for (i = 0; i < N; i++) {
        CHECK_EQ(w[i].V.Source, AGENTSH_SOURCE_FAILMODE);
        CHECK_EQ(w[i].V.Decision, DECISION_ALLOW);
        /* the waiters give the owner's reason and status, not just "collapsed" */
        CHECK_EQ(w[i].V.Reason, DECISION_REASON_QUERY_FAILED);
        CHECK_EQ(w[i].V.QueryStatus, STATUS_TIMEOUT);
        CHECK_EQ(w[i].V.Reported, 1);
    }
    /* every one of them is a fail-mode decision, in the counter and in the counts */
    GetMetrics(&core, &m);
    CHECK_EQ(m.FailModeDecisions, N);
    CHECK_EQ(m.CacheCollapsedCount, N - 1);
    CHECK_EQ(DecisionCount(&core, DECISION_SOURCE_FAIL_MODE, AGENTSH_KIND_FILE, FILE_OP_WRITE, DECISION_ALLOW), N);
    CoreTeardown(&core);
}

static void test_collapse_bounded_by_timeout(void)
{
    enum { N = 4 };
    AGENTSH_CORE core;
    FAKE_PORT port;
    pthread_t t[N];
    WORKER w[N];
    int i;
    CoreSetup(&core, &port);
    CHECK(SendConfig(&core, FAIL_MODE_CLOSED, 100, 10, 4096, 5000, 3600000, 1000) == STATUS_SUCCESS);
    port.Block = 1;                           /* the broker never answers while waiters wait */
    for (i = 0; i < N; i++) {
        w[i].Core = &core; w[i].Path = "\\slow"; w[i].Pid = 0;
        pthread_create(&t[i], NULL, DecideThread, &w[i]);
        if (i == 0) WaitCalls(&port, 1);
    }
    for (i = 1; i < N; i++) pthread_join(t[i], NULL);   /* waiters give up after ~100 ms */
    for (i = 1; i < N; i++) {
        CHECK_EQ(w[i].V.Source, AGENTSH_SOURCE_FAILMODE);
        CHECK_EQ(w[i].V.Decision, DECISION_DENY);
        CHECK_EQ(w[i].V.Collapsed, 1);
    }
    port.Mode = FAKE_TIMEOUT;
    FakePortRelease(&port);
    pthread_join(t[0], NULL);
    CHECK_EQ(w[0].V.Source, AGENTSH_SOURCE_FAILMODE);
    CHECK_EQ(port.Calls, 1);
    /* the waiters that gave up and the owner whose query timed out: all by the fail mode */
    CHECK_EQ(DecisionCount(&core, DECISION_SOURCE_FAIL_MODE, AGENTSH_KIND_FILE, FILE_OP_WRITE, DECISION_DENY), N);
    CHECK_EQ(DecisionCount(&core, DECISION_SOURCE_CACHE, AGENTSH_KIND_FILE, FILE_OP_WRITE, DECISION_DENY), 0);
    CoreTeardown(&core);
}

typedef struct { AGENTSH_CORE *Core; int Id; } STRESS;

static void *StressThread(void *Arg)
{
    STRESS *s = (STRESS *)Arg;
    char p[64];
    int i;
    AGENTSH_USTR img = U("\\i.exe");
    for (i = 0; i < 3000; i++) {
        uint32_t pid = 100;
        snprintf(p, sizeof p, "\\Device\\V\\f%d", (i * 7 + s->Id) % 300);
        switch ((i + s->Id) % 10) {
        case 0: {
            AGENTSH_CACHE_UPDATE u;
            memset(&u, 0, sizeof(u));
            u.Header.Type = MSG_UPDATE_CACHE; u.Header.Size = sizeof(u); u.Scope = CACHE_SCOPE_SESSION; u.SessionToken = 7;
            (void)Dispatch(s->Core, &u, sizeof(u));
            break;
        }
        case 1:
            (void)SendConfig(s->Core, 0, 5000, 10, 100 + (uint32_t)(i % 3) * 150, 5000, 5000, 1000);
            break;
        case 2:
            (void)AgentshCoreProcessCreated(s->Core, 1000 + 4 * (uint32_t)s->Id, 100, 100, &img);
            (void)AgentshCoreProcessTerminated(s->Core, 1000 + 4 * (uint32_t)s->Id, 0);
            break;
        case 3: {
            AGENTSH_METRICS m;
            AGENTSH_MESSAGE_HEADER h = { MSG_GET_METRICS, 16, 1 };
            UINT32 n;
            (void)AgentshCoreDispatch(s->Core, &h, 16, &m, sizeof(m), &n);
            (void)DecisionCount(s->Core, DECISION_SOURCE_CACHE, AGENTSH_KIND_FILE, FILE_OP_WRITE, DECISION_ALLOW);
            break;
        }
        default:
            (void)DecideFile(s->Core, pid, FILE_OP_WRITE, p, NULL);
            break;
        }
        if (i % 500 == 0) (void)AgentshCoreRunNotifications(s->Core, 0);
    }
    return NULL;
}

static void test_concurrency_stress(void)
{
    enum { N = 4 };
    AGENTSH_CORE core;
    FAKE_PORT port;
    pthread_t t[N];
    STRESS s[N];
    AGENTSH_METRICS m;
    int i;
    CoreSetup(&core, &port);
    for (i = 0; i < N; i++) { s[i].Core = &core; s[i].Id = i; pthread_create(&t[i], NULL, StressThread, &s[i]); }
    for (i = 0; i < N; i++) pthread_join(t[i], NULL);
    GetMetrics(&core, &m);
    CHECK(m.CacheEntryCount <= m.CacheCapacity);
    CHECK_EQ(core.Cache.InFlightCount, 0);
    CHECK_EQ(m.TrackedProcesses, 1);
    CoreTeardown(&core);
}

const TEST_CASE gCollapseTests[] = {
    { "collapse_identical_concurrent_queries", test_collapse_identical_queries },
    { "collapse_waiters_bounded_by_timeout", test_collapse_bounded_by_timeout },
    { "collapse_waiters_take_the_failed_owners_reason", test_collapse_owner_failed },
    { "concurrency_stress_decide_invalidate_config", test_concurrency_stress },
    { NULL, NULL }
};
