#include <time.h>
#include <unistd.h>
#include "test.h"

int gTestFailed;
uint64_t gFakeNow = 1000000;

void TestFail(const char *file, int line, const char *expr)
{
    if (!gTestFailed) {
        fprintf(stdout, "    FAILED %s:%d: %s\n", file, line, expr);
    }
    gTestFailed = 1;
}

UINT64 FakeClock(void *Ctx)
{
    (void)Ctx;
    return __atomic_load_n(&gFakeNow, __ATOMIC_SEQ_CST);
}

static __thread uint16_t gRing[16][2048];
static __thread int gRingNext;

AGENTSH_USTR U(const char *s)
{
    uint16_t *b = gRing[gRingNext++ & 15];
    AGENTSH_USTR u;
    uint32_t n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p && n < 2047) {
        uint32_t c = *p++;
        if (c >= 0xC0 && c < 0xE0) { c = ((c & 0x1F) << 6) | (*p++ & 0x3F); }
        else if (c >= 0xE0 && c < 0xF0) { c = ((c & 0x0F) << 12) | ((p[0] & 0x3F) << 6) | (p[1] & 0x3F); p += 2; }
        b[n++] = (uint16_t)c;
    }
    b[n] = 0;
    u.Buffer = n ? b : NULL;
    u.Length = n;
    return u;
}

AGENTSH_USTR U16(const uint16_t *s, uint32_t n)
{
    AGENTSH_USTR u = { s, n };
    return u;
}

void FakePortInit(FAKE_PORT *P)
{
    memset(P, 0, sizeof(*P));
    P->Decision = DECISION_ALLOW;
    P->Ttl = AGENTSH_TTL_DEFAULT;
    pthread_mutex_init(&P->Mutex, NULL);
    pthread_cond_init(&P->Cond, NULL);
}

void FakePortRelease(FAKE_PORT *P)
{
    pthread_mutex_lock(&P->Mutex);
    P->Released = 1;
    pthread_cond_broadcast(&P->Cond);
    pthread_mutex_unlock(&P->Mutex);
}

NTSTATUS FakeSend(void *Ctx, const void *Msg, UINT32 Size, void *Reply, UINT32 *ReplyLength, UINT32 TimeoutMs)
{
    FAKE_PORT *P = (FAKE_PORT *)Ctx;
    AGENTSH_MESSAGE_HEADER h;
    AGENTSH_POLICY_RESPONSE r;
    (void)TimeoutMs;
    memcpy(&h, Msg, sizeof(h));
    if (AgentshValidateMessage(Msg, Size, NULL) != STATUS_SUCCESS) {
        fprintf(stdout, "    core sent an invalid message (type %u size %u)\n", h.Type, Size);
        gTestFailed = 1;
    }
    if (Reply == NULL) {
        if (P->NotifyStatus != STATUS_SUCCESS) {
            return P->NotifyStatus; /* not delivered */
        }
        __atomic_add_fetch(&P->Notifications, 1, __ATOMIC_SEQ_CST);
        pthread_mutex_lock(&P->Mutex);
        P->LastType = h.Type;
        P->LastSize = Size;
        memcpy(P->LastMessage, Msg, Size < sizeof(P->LastMessage) ? Size : sizeof(P->LastMessage));
        pthread_mutex_unlock(&P->Mutex);
        return STATUS_SUCCESS;
    }
    __atomic_add_fetch(&P->Calls, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&P->Mutex);
    P->LastType = h.Type;
    P->LastRequestId = h.RequestId;
    P->LastSize = Size;
    memcpy(P->LastMessage, Msg, Size < sizeof(P->LastMessage) ? Size : sizeof(P->LastMessage));
    while (P->Block && !P->Released) {
        pthread_cond_wait(&P->Cond, &P->Mutex);
    }
    pthread_mutex_unlock(&P->Mutex);
    if (P->DelayMs) {
        usleep(P->DelayMs * 1000u);
    }
    memset(&r, 0, sizeof(r));
    r.Header.Type = MSG_POLICY_RESPONSE;
    r.Header.Size = sizeof(r);
    r.Header.RequestId = h.RequestId;
    r.Decision = P->Decision;
    r.CacheTTLMs = P->Ttl;
    switch (P->Mode) {
    case FAKE_TIMEOUT: *ReplyLength = 0; return STATUS_TIMEOUT;
    case FAKE_DISCONNECTED: *ReplyLength = 0; return STATUS_PORT_DISCONNECTED;
    case FAKE_ERROR_STATUS: *ReplyLength = 0; return STATUS_INSUFFICIENT_RESOURCES;
    case FAKE_SHORT: memcpy(Reply, &r, 16); *ReplyLength = 16; return STATUS_SUCCESS;
    case FAKE_LONG: memcpy(Reply, &r, sizeof(r)); *ReplyLength = sizeof(r) + 8; return STATUS_SUCCESS;
    case FAKE_WRONG_ID: r.Header.RequestId ^= 0x55; break;
    case FAKE_WRONG_TYPE: r.Header.Type = MSG_PONG; break;
    case FAKE_BAD_DECISION: r.Decision = 3; break;
    case FAKE_NONZERO_FLAGS: r.Flags = 1; break;
    default: break;
    }
    memcpy(Reply, &r, sizeof(r));
    *ReplyLength = sizeof(r);
    return STATUS_SUCCESS;
}

NTSTATUS Dispatch(AGENTSH_CORE *Core, const void *Msg, uint32_t Size)
{
    uint8_t out[512];
    UINT32 n = 0;
    return AgentshCoreDispatch(Core, Msg, Size, out, sizeof(out), &n);
}

void *BuildWithString(uint32_t Type, uint32_t FixedSize, uint32_t FieldOffset, const char *Str, uint32_t *Size)
{
    AGENTSH_USTR s = U(Str ? Str : "");
    uint32_t total = FixedSize + (s.Length ? 2 * (s.Length + 1) : 0);
    uint8_t *m = calloc(1, total);
    AGENTSH_MESSAGE_HEADER h = { Type, total, 1 };
    AGENTSH_STRING ref = { s.Length ? FixedSize : 0, s.Length };
    memcpy(m, &h, sizeof(h));
    memcpy(m + FieldOffset, &ref, sizeof(ref));
    if (s.Length) {
        memcpy(m + FixedSize, s.Buffer, 2 * s.Length);
    }
    *Size = total;
    return m;
}

void CoreSetup(AGENTSH_CORE *Core, FAKE_PORT *Port)
{
    AGENTSH_SESSION_REGISTER r;
    FakePortInit(Port);
    gFakeNow = 1000000;
    if (AgentshCoreInit(Core, FakeSend, Port, FakeClock, NULL) != STATUS_SUCCESS) {
        abort();
    }
    AgentshCoreClientConnected(Core, 4242);
    memset(&r, 0, sizeof(r));
    r.Header.Type = MSG_REGISTER_SESSION;
    r.Header.Size = sizeof(r);
    r.SessionToken = 7;
    r.RootProcessId = 100;
    if (Dispatch(Core, &r, sizeof(r)) != STATUS_SUCCESS) {
        abort();
    }
}

void CoreTeardown(AGENTSH_CORE *Core)
{
    AgentshCoreDestroy(Core);
}

AGENTSH_VERDICT DecideFile(AGENTSH_CORE *Core, uint32_t Pid, uint32_t Op, const char *Path, const char *Dest)
{
    AGENTSH_DECIDE_REQUEST q;
    AGENTSH_VERDICT v;
    memset(&q, 0, sizeof(q));
    q.Kind = AGENTSH_KIND_FILE;
    q.ProcessId = Pid;
    q.ThreadId = 1;
    q.Operation = Op;
    q.Strings[0] = U(Path);
    if (Dest) {
        q.Strings[1] = U(Dest);
    }
    q.Strings[2] = U("\\Device\\HarddiskVolume3");
    AgentshCoreDecide(Core, &q, &v);
    return v;
}

AGENTSH_VERDICT DecideReg(AGENTSH_CORE *Core, uint32_t Pid, uint32_t Op, const char *Key, const char *Value)
{
    AGENTSH_DECIDE_REQUEST q;
    AGENTSH_VERDICT v;
    memset(&q, 0, sizeof(q));
    q.Kind = AGENTSH_KIND_REGISTRY;
    q.ProcessId = Pid;
    q.Operation = Op;
    q.Strings[0] = U(Key);
    if (Value) {
        q.Strings[1] = U(Value);
    }
    AgentshCoreDecide(Core, &q, &v);
    return v;
}

NTSTATUS SendConfig(AGENTSH_CORE *Core, uint32_t FailMode, uint32_t Timeout, uint32_t MaxFail, uint32_t Entries,
                    uint32_t DefTtl, uint32_t MaxTtl, uint32_t Probe)
{
    AGENTSH_CONFIG c;
    memset(&c, 0, sizeof(c));
    c.Header.Type = MSG_SET_CONFIG;
    c.Header.Size = sizeof(c);
    c.FailMode = FailMode;
    c.PolicyQueryTimeoutMs = Timeout;
    c.MaxConsecutiveFailures = MaxFail;
    c.CacheMaxEntries = Entries;
    c.CacheDefaultTTLMs = DefTtl;
    c.CacheMaxTTLMs = MaxTtl;
    c.ProbeIntervalMs = Probe;
    return Dispatch(Core, &c, sizeof(c));
}

void GetMetrics(AGENTSH_CORE *Core, AGENTSH_METRICS *M)
{
    AGENTSH_MESSAGE_HEADER h = { MSG_GET_METRICS, 16, 9 };
    UINT32 n = 0;
    memset(M, 0xAB, sizeof(*M));
    if (AgentshCoreDispatch(Core, &h, sizeof(h), M, sizeof(*M), &n) != STATUS_SUCCESS || n != sizeof(*M)) {
        gTestFailed = 1;
    }
}

UINT64 DecisionCount(AGENTSH_CORE *Core, uint32_t Source, uint32_t Kind, uint32_t Op, uint32_t Decision)
{
    AGENTSH_MESSAGE_HEADER h = { MSG_GET_DECISION_COUNTS, 16, 11 };
    uint8_t out[AGENTSH_DECISION_COUNTS_MAX_SIZE];
    AGENTSH_DECISION_COUNTS head;
    AGENTSH_DECISION_COUNT e;
    UINT64 found = 0;
    UINT32 n = 0, i, key, lastKey = 0;
    if (AgentshCoreDispatch(Core, &h, sizeof(h), out, sizeof(out), &n) != STATUS_SUCCESS ||
        AgentshValidateMessage(out, n, NULL) != STATUS_SUCCESS) {
        gTestFailed = 1;
        return 0;
    }
    memcpy(&head, out, sizeof(head));
    if (head.Header.Type != MSG_DECISION_COUNTS_REPLY || head.Header.RequestId != 11 || head.Reserved != 0) {
        gTestFailed = 1;
    }
    for (i = 0; i < head.Count; i++) {
        memcpy(&e, out + sizeof(head) + i * sizeof(e), sizeof(e));
        /* one entry per combination, never 0, in slot order */
        key = AGENTSH_DECISION_SLOT(e.Source, e.Kind, e.Operation, e.Decision);
        if (e.Count == 0 || (i > 0 && key <= lastKey)) {
            gTestFailed = 1;
        }
        lastKey = key;
        if (e.Source == Source && e.Kind == Kind && e.Operation == Op && e.Decision == Decision) {
            found = e.Count;
        }
    }
    return found;
}
