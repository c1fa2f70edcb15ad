/* test_port.c - the emulated filter port through libfltsim's ABI (same process, real sockets):
 * connect checks, request/reply framing, STATUS_TIMEOUT, late replies, several blocked readers,
 * FilterClose, port disconnect, FilterSendMessage commands, QueryDosDeviceW, malformed input. */
#include <unistd.h>
#include "test.h"
#include "sim_port.h"
#include "sim_wire.h"

int32_t FilterConnectCommunicationPort(const uint16_t *, uint32_t, const void *, uint16_t, void *, void **);
int32_t FilterGetMessage(void *, void *, uint32_t, void *);
int32_t FilterReplyMessage(void *, void *, uint32_t);
int32_t FilterSendMessage(void *, void *, uint32_t, void *, uint32_t, uint32_t *);
int32_t FilterClose(void *);
uint32_t QueryDosDeviceW(const uint16_t *, uint16_t *, uint32_t);
uint32_t GetLastError(void);
void *CreateIoCompletionPort(void *, void *, uint64_t, uint32_t);
int32_t GetQueuedCompletionStatusEx(void *, void *, uint32_t, uint32_t *, uint32_t, int32_t);
int32_t PostQueuedCompletionStatus(void *, uint32_t, uint64_t, void *);
int32_t CloseHandle(void *);

static AGENTSH_CORE gCore;
static SIM_PORT gPort;
static int gStarted;
static const uint16_t kPortName[] = { '\\', 'A', 'g', 'e', 'n', 't', 's', 'h', 'P', 'o', 'r', 't', 0 };

static void Start(void)
{
    char path[108];
    AGENTSH_SESSION_REGISTER r;
    if (gStarted) return;
    snprintf(path, sizeof path, "/tmp/agentsh-test-%d.sock", (int)getpid());
    setenv("AGENTSH_SIM_SOCKET", path, 1);
    if (AgentshCoreInit(&gCore, SimPortSend, &gPort, NULL, NULL) != STATUS_SUCCESS) abort();
    if (SimPortStart(&gPort, &gCore, path, "C:=\\Device\\HarddiskVolume3\nD:=\\Device\\HarddiskVolume4\n") != 0) abort();
    memset(&r, 0, sizeof(r));
    r.Header.Type = MSG_REGISTER_SESSION;
    r.Header.Size = sizeof(r);
    r.SessionToken = 7;
    r.RootProcessId = 100;
    if (Dispatch(&gCore, &r, sizeof(r)) != STATUS_SUCCESS) abort();
    gStarted = 1;
}

static int32_t Connect(void **h)
{
    AGENTSH_CONNECT_CONTEXT c = { AGENTSH_CONNECT_MAGIC, AGENTSH_PROTOCOL_VERSION, (uint32_t)getpid(), 0 };
    return FilterConnectCommunicationPort(kPortName, 0, &c, sizeof(c), NULL, h);
}

static void SetTimeout(uint32_t ms, uint32_t maxFail)
{
    if (SendConfig(&gCore, FAIL_MODE_CLOSED, ms, maxFail, 4096, 5000, 3600000, 100) != STATUS_SUCCESS) abort();
}

typedef struct { const char *Path; AGENTSH_VERDICT V; } DECIDER;

static void *DecideT(void *a)
{
    DECIDER *d = (DECIDER *)a;
    d->V = DecideFile(&gCore, 100, FILE_OP_WRITE, d->Path, NULL);
    return NULL;
}

static void WaitDisconnected(void)
{
    int i;
    for (i = 0; i < 500 && AgentshAtomicLoad32(&gCore.ClientConnected); i++) usleep(1000);
}

static void test_port_connect_rules(void)
{
    void *h = NULL, *h2 = NULL;
    AGENTSH_CONNECT_CONTEXT c = { AGENTSH_CONNECT_MAGIC, 2, 1, 0 };
    char saved[128];
    Start();
    CHECK_EQ((uint32_t)FilterConnectCommunicationPort(kPortName, 0, &c, sizeof(c), NULL, &h), 0x8007051Au);
    c.ProtocolVersion = 1;
    c.Magic = 0x12345678;
    CHECK_EQ((uint32_t)FilterConnectCommunicationPort(kPortName, 0, &c, sizeof(c), NULL, &h), 0x80070057u);
    CHECK_EQ((uint32_t)FilterConnectCommunicationPort(kPortName, 0, NULL, 0, NULL, &h), 0x80070057u);
    CHECK(h == NULL);
    CHECK_EQ(Connect(&h), 0);
    CHECK(AgentshAtomicLoad32(&gCore.ClientConnected) == 1);
    CHECK_EQ((uint32_t)Connect(&h2), 0x800704D6u);          /* one connection only */
    CHECK_EQ(FilterClose(h), 0);
    CHECK_EQ((uint32_t)FilterClose(h), 0x80070006u);        /* stale handle */
    WaitDisconnected();
    CHECK_EQ(Connect(&h), 0);                                /* reconnect = new client */
    CHECK_EQ(FilterClose(h), 0);
    WaitDisconnected();
    snprintf(saved, sizeof saved, "%s", getenv("AGENTSH_SIM_SOCKET"));
    setenv("AGENTSH_SIM_SOCKET", "/tmp/agentsh-test-nonexistent.sock", 1);
    CHECK_EQ((uint32_t)Connect(&h), 0x80070002u);
    setenv("AGENTSH_SIM_SOCKET", saved, 1);
}

static void test_port_request_reply_framing(void)
{
    void *h;
    uint8_t buf[16 + 4096];
    FILTER_MESSAGE_HEADER fh;
    AGENTSH_FILE_REQUEST req;
    AGENTSH_REPLY_MESSAGE rep;
    pthread_t t;
    DECIDER d = { "\\Device\\HarddiskVolume3\\rr", { 0 } };
    uint32_t type;
    Start();
    SetTimeout(5000, 10);
    CHECK_EQ(Connect(&h), 0);
    pthread_create(&t, NULL, DecideT, &d);
    CHECK_EQ(FilterGetMessage(h, buf, sizeof(buf), NULL), 0);
    memcpy(&fh, buf, 16);
    memcpy(&req, buf + 16, sizeof(req));
    CHECK_EQ(fh.ReplyLength, sizeof(AGENTSH_POLICY_RESPONSE));
    CHECK(fh.MessageId != 0);
    CHECK_EQ(AgentshValidateMessage(buf + 16, sizeof(buf) - 16, &type), STATUS_SUCCESS);
    CHECK_EQ(type, MSG_POLICY_CHECK_FILE);
    CHECK_EQ(req.SessionToken, 7);
    CHECK_EQ(req.ProcessId, 100);
    CHECK_EQ(req.Operation, FILE_OP_WRITE);
    memset(&rep, 0, sizeof(rep));
    rep.ReplyHeader.MessageId = fh.MessageId;
    rep.Response.Header.Type = MSG_POLICY_RESPONSE;
    rep.Response.Header.Size = 32;
    rep.Response.Header.RequestId = req.Header.RequestId;
    rep.Response.Decision = DECISION_DENY;
    rep.Response.CacheTTLMs = AGENTSH_TTL_DEFAULT;
    CHECK_EQ(FilterReplyMessage(h, &rep, sizeof(rep)), 0);
    pthread_join(t, NULL);
    CHECK_EQ(d.V.Source, AGENTSH_SOURCE_BROKER);
    CHECK_EQ(d.V.Decision, DECISION_DENY);
    CHECK_EQ((uint32_t)FilterReplyMessage(h, &rep, sizeof(rep)), 0x801F0020u);    /* answered already */
    CHECK_EQ((uint32_t)FilterGetMessage(h, buf, sizeof(buf), (void *)1), 0x80070057u); /* overlapped */
    CHECK_EQ((uint32_t)FilterReplyMessage(h, &rep, 8), 0x80070057u);
    CHECK_EQ(FilterClose(h), 0);
    WaitDisconnected();
}

typedef struct { void *H; int32_t Hr; uint32_t Delay; } LATE;

static void *LateReader(void *a)
{
    LATE *l = (LATE *)a;
    uint8_t buf[16 + 4096];
    FILTER_MESSAGE_HEADER fh;
    AGENTSH_REPLY_MESSAGE rep;
    l->Hr = FilterGetMessage(l->H, buf, sizeof(buf), NULL);
    if (l->Hr != 0) return NULL;
    memcpy(&fh, buf, 16);
    usleep(l->Delay * 1000);
    memset(&rep, 0, sizeof(rep));
    rep.ReplyHeader.MessageId = fh.MessageId;
    rep.Response.Header.Type = MSG_POLICY_RESPONSE;
    rep.Response.Header.Size = 32;
    memcpy(&rep.Response.Header.RequestId, buf + 16 + 8, 8);
    l->Hr = FilterReplyMessage(l->H, &rep, sizeof(rep));
    return NULL;
}

static void test_port_timeout_and_late_reply(void)
{
    void *h;
    AGENTSH_VERDICT v;
    LATE l;
    pthread_t t;
    uint64_t t0;
    Start();
    SetTimeout(100, 10);
    CHECK_EQ(Connect(&h), 0);
    /* nobody reads: STATUS_TIMEOUT after ~100 ms, counted as a timeout and a failure */
    t0 = AgentshMonotonicMs();
    v = DecideFile(&gCore, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\noreader", NULL);
    CHECK(AgentshMonotonicMs() - t0 >= 95);
    CHECK_EQ(v.Source, AGENTSH_SOURCE_FAILMODE);
    CHECK_EQ(v.Decision, DECISION_DENY);
    CHECK_EQ(v.QueryStatus, STATUS_TIMEOUT);
    /* the withdrawn message is not delivered later; a reader that answers too late gets
     * ERROR_FLT_NO_WAITER_FOR_REPLY */
    l.H = h;
    l.Delay = 250;
    pthread_create(&t, NULL, LateReader, &l);
    v = DecideFile(&gCore, 100, FILE_OP_WRITE, "\\Device\\HarddiskVolume3\\late", NULL);
    CHECK_EQ(v.QueryStatus, STATUS_TIMEOUT);
    pthread_join(t, NULL);
    CHECK_EQ((uint32_t)l.Hr, 0x801F0020u);
    CHECK(AgentshAtomicLoad64(&gCore.Timeouts) >= 2);
    CHECK_EQ(FilterClose(h), 0);
    WaitDisconnected();
}

typedef struct { void *H; int32_t Hr; } READER;

static void *BlockedReader(void *a)
{
    READER *r = (READER *)a;
    uint8_t buf[16 + 512];
    __atomic_store_n(&r->Hr, FilterGetMessage(r->H, buf, sizeof(buf), NULL), __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_port_many_readers_close_and_disconnect(void)
{
    enum { N = 6 };
    void *h;
    READER r[N];
    pthread_t t[N];
    int joined[N];
    pthread_t dt;
    DECIDER d = { "\\Device\\HarddiskVolume3\\disc", { 0 } };
    AGENTSH_USTR img = U("\\x.exe");
    int i, k, served = -1, aborted = 0;
    Start();
    SetTimeout(5000, 10);
    CHECK_EQ(Connect(&h), 0);
    for (i = 0; i < N; i++) {
        r[i].H = h;
        __atomic_store_n(&r[i].Hr, 12345, __ATOMIC_SEQ_CST);
        joined[i] = 0;
        pthread_create(&t[i], NULL, BlockedReader, &r[i]);
    }
    usleep(50000);
    /* a notification is delivered to exactly one of the blocked readers */
    CHECK(AgentshCoreProcessCreated(&gCore, 104, 100, 100, &img));
    (void)AgentshCoreRunNotifications(&gCore, 10);
    for (i = 0; i < 1000 && served < 0; i++) {
        for (k = 0; k < N; k++) if (__atomic_load_n(&r[k].Hr, __ATOMIC_SEQ_CST) == 0) served = k;
        if (served < 0) usleep(1000);
    }
    CHECK(served >= 0);
    pthread_join(t[served], NULL);
    joined[served] = 1;
    (void)AgentshCoreProcessTerminated(&gCore, 104, 0);
    /* a query nobody answers (readers' buffers are too small for nothing: it is queued to one of
     * them, which never replies), then the client closes: the sender sees the port disconnect */
    pthread_create(&dt, NULL, DecideT, &d);
    usleep(50000);
    CHECK_EQ(FilterClose(h), 0);
    for (i = 0; i < N; i++) if (!joined[i]) pthread_join(t[i], NULL);
    pthread_join(dt, NULL);
    for (i = 0; i < N; i++) if ((uint32_t)r[i].Hr == 0x800703E3u) aborted++;
    CHECK(aborted >= N - 2);          /* one served the notification, one may have taken the query */
    CHECK_EQ(d.V.Source, AGENTSH_SOURCE_FAILMODE);
    CHECK_EQ(d.V.QueryStatus, STATUS_PORT_DISCONNECTED);
    WaitDisconnected();
    CHECK_EQ(AgentshAtomicLoad32(&gCore.ClientConnected), 0);
}

static void test_port_send_message_commands(void)
{
    void *h;
    AGENTSH_MESSAGE_HEADER gm = { MSG_GET_METRICS, 16, 3 };
    AGENTSH_METRICS m;
    AGENTSH_PING ping;
    AGENTSH_PONG pong;
    AGENTSH_CONFIG c;
    uint32_t got = 0;
    uint8_t junk[300];
    int i;
    Start();
    CHECK_EQ(Connect(&h), 0);
    CHECK_EQ(FilterSendMessage(h, &gm, 16, &m, sizeof(m), &got), 0);
    CHECK_EQ(got, 184);
    CHECK_EQ(m.Header.Type, MSG_METRICS_REPLY);
    CHECK_EQ(m.ClientConnected, 1);
    CHECK_EQ((uint32_t)FilterSendMessage(h, &gm, 16, &m, 100, &got), 0x8007007Au);
    memset(&ping, 0, sizeof(ping));
    ping.Header.Type = MSG_PING; ping.Header.Size = 24; ping.Timestamp = 99;
    CHECK_EQ(FilterSendMessage(h, &ping, 24, &pong, sizeof(pong), &got), 0);
    CHECK_EQ(got, 32);
    CHECK_EQ(pong.ClientProcessId, (uint32_t)getpid());
    CHECK_EQ(pong.Timestamp, 99);
    memset(&c, 0, sizeof(c));
    c.Header.Type = MSG_SET_CONFIG; c.Header.Size = 48; c.PolicyQueryTimeoutMs = 50;
    CHECK_EQ((uint32_t)FilterSendMessage(h, &c, 48, NULL, 0, &got), 0x80070057u);
    CHECK_EQ((uint32_t)FilterSendMessage(h, &gm, 15, NULL, 0, &got), 0x80070057u);
    {
        AGENTSH_SESSION_UNREGISTER u = { { MSG_UNREGISTER_SESSION, 24, 1 }, 424242 };
        CHECK_EQ((uint32_t)FilterSendMessage(h, &u, 24, NULL, 0, &got), 0x80070490u);
    }
    /* garbage never crashes the simulator and always gets an error */
    for (i = 0; i < 300; i++) {
        uint32_t k, len = (uint32_t)(i % 120) + 1;
        for (k = 0; k < len; k++) junk[k] = (uint8_t)(k * 31 + (uint32_t)i * 7);
        if (i % 3 == 0 && len >= 8) { uint32_t ty = 100 + (uint32_t)i % 12; memcpy(junk, &ty, 4); memcpy(junk + 4, &len, 4); }
        (void)FilterSendMessage(h, junk, len, junk, sizeof(junk), &got);
    }
    CHECK_EQ(FilterSendMessage(h, &gm, 16, &m, sizeof(m), &got), 0);
    CHECK_EQ(FilterClose(h), 0);
    WaitDisconnected();
}

static void test_port_query_dos_device(void)
{
    uint16_t out[64];
    const uint16_t c[] = { 'c', ':', 0 }, z[] = { 'Z', ':', 0 }, bad[] = { 'C', ':', '\\', 0 };
    const char *want = "\\Device\\HarddiskVolume3";
    uint32_t n, i;
    Start();
    n = QueryDosDeviceW(c, out, 64);
    CHECK_EQ(n, strlen(want) + 2);
    for (i = 0; i < strlen(want); i++) CHECK_EQ(out[i], (uint16_t)want[i]);
    CHECK_EQ(out[n - 2], 0);
    CHECK_EQ(out[n - 1], 0);
    CHECK_EQ(QueryDosDeviceW(z, out, 64), 0);
    CHECK_EQ(QueryDosDeviceW(bad, out, 64), 0);
    CHECK_EQ(QueryDosDeviceW(c, out, 10), 0);            /* too small */
    n = QueryDosDeviceW(NULL, out, 64);                  /* list: C:\0D:\0\0 */
    CHECK_EQ(n, 7);
    CHECK_EQ(out[0], 'C');
    CHECK_EQ(out[3], 'D');
    CHECK_EQ(out[6], 0);
}

/* x64 OVERLAPPED and OVERLAPPED_ENTRY, as the broker lays them out */
typedef struct { uint64_t Internal, InternalHigh; uint32_t Offset, OffsetHigh; void *hEvent; } OVL;
typedef struct { uint64_t Key; OVL *Ov; uint64_t Internal; uint32_t Bytes, Pad; } OVL_ENTRY;

/* Waits for n completions on c (10 s at most); returns how many came. */
static uint32_t Collect(void *c, OVL_ENTRY *out, uint32_t n)
{
    uint32_t got = 0, removed;
    while (got < n) {
        if (!GetQueuedCompletionStatusEx(c, out + got, n - got, &removed, 10000, 0)) break;
        got += removed;
    }
    return got;
}

/* A thread waiting (INFINITE) for one completion on C: its result, error and entry. */
typedef struct { void *C; int32_t Ok; uint32_t Err; OVL_ENTRY E; } IOCP_WAITER;

static void *IocpWaiter(void *a)
{
    IOCP_WAITER *w = (IOCP_WAITER *)a;
    uint32_t removed = 0;
    w->Ok = GetQueuedCompletionStatusEx(w->C, &w->E, 1, &removed, 0xFFFFFFFFu, 0);
    w->Err = GetLastError();
    return NULL;
}

/* Starts an IocpWaiter on c and gives it 20 ms to begin its wait. */
static void StartWaiter(IOCP_WAITER *w, void *c, pthread_t *t)
{
    memset(w, 0, sizeof(*w));
    w->C = c;
    pthread_create(t, NULL, IocpWaiter, w);
    usleep(20000);
}

/* Replies allow to the message in buf (FILTER_MESSAGE_HEADER + policy check). */
static void ReplyAllow(void *h, const uint8_t *buf)
{
    FILTER_MESSAGE_HEADER fh;
    AGENTSH_REPLY_MESSAGE rep;
    memcpy(&fh, buf, 16);
    memset(&rep, 0, sizeof(rep));
    rep.ReplyHeader.MessageId = fh.MessageId;
    rep.Response.Header.Type = MSG_POLICY_RESPONSE;
    rep.Response.Header.Size = 32;
    memcpy(&rep.Response.Header.RequestId, buf + 16 + 8, 8);
    rep.Response.Decision = DECISION_ALLOW;
    CHECK_EQ(FilterReplyMessage(h, &rep, sizeof(rep)), 0);
}

static void test_port_overlapped_reads_completion_port(void)
{
    enum { READS = 8, QUERIES = 5 };
    static uint8_t bufs[READS][16 + 4096];
    static OVL ov[READS];
    static char paths[QUERIES][64];
    DECIDER d[QUERIES];
    pthread_t t[QUERIES], wt;
    OVL_ENTRY e[READS];
    OVL mine;
    IOCP_WAITER w;
    void *h, *c, *c2;
    uint32_t i, k, removed = 7, seen = 0;
    Start();
    SetTimeout(5000, 10);
    CHECK_EQ(Connect(&h), 0);
    /* not associated yet: overlapped reads are refused */
    CHECK_EQ((uint32_t)FilterGetMessage(h, bufs[0], sizeof(bufs[0]), &ov[0]), 0x80070057u);
    c = CreateIoCompletionPort(h, NULL, 42, 1);
    CHECK(c != NULL);
    CHECK(CreateIoCompletionPort(h, NULL, 43, 1) == NULL); /* a handle is associated once */
    CHECK_EQ(GetLastError(), 87u);
    CHECK(CreateIoCompletionPort((void *)(intptr_t)-1, c, 0, 1) == NULL);
    for (i = 0; i < READS; i++) {
        CHECK_EQ((uint32_t)FilterGetMessage(h, bufs[i], sizeof(bufs[i]), &ov[i]), 0x800703E5u); /* IO_PENDING */
        CHECK_EQ(ov[i].Internal, 0x103u);
    }
    /* nothing yet: a bounded wait times out */
    CHECK_EQ(GetQueuedCompletionStatusEx(c, e, READS, &removed, 20, 0), 0);
    CHECK_EQ(GetLastError(), 258u);
    CHECK_EQ(removed, 0u);
    /* five queries complete five reads, oldest first, each with its message */
    for (i = 0; i < QUERIES; i++) {
        snprintf(paths[i], sizeof paths[i], "\\Device\\HarddiskVolume3\\ovl%u", i);
        d[i].Path = paths[i];
        pthread_create(&t[i], NULL, DecideT, &d[i]);
    }
    CHECK_EQ(Collect(c, e, QUERIES), QUERIES);
    for (i = 0; i < QUERIES; i++) {
        uint32_t type;
        k = (uint32_t)(e[i].Ov - ov);
        CHECK(k < QUERIES);
        seen |= 1u << k;
        CHECK_EQ(e[i].Key, 42u);
        CHECK_EQ(e[i].Internal, 0u);
        CHECK_EQ(ov[k].Internal, 0u);
        CHECK_EQ(ov[k].InternalHigh, e[i].Bytes);
        CHECK_EQ(e[i].Bytes, 16u + ((AGENTSH_MESSAGE_HEADER *)(bufs[k] + 16))->Size);
        CHECK_EQ(AgentshValidateMessage(bufs[k] + 16, e[i].Bytes - 16, &type), STATUS_SUCCESS);
        CHECK_EQ(type, MSG_POLICY_CHECK_FILE);
        ReplyAllow(h, bufs[k]);
    }
    CHECK_EQ(seen, (1u << QUERIES) - 1u); /* the oldest reads got the messages */
    for (i = 0; i < QUERIES; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(d[i].V.Source, AGENTSH_SOURCE_BROKER);
        CHECK_EQ(d[i].V.Decision, DECISION_ALLOW);
    }
    /* a posted packet comes through as posted, and leaves its OVERLAPPED alone */
    memset(&mine, 0, sizeof(mine));
    mine.Internal = 77;
    CHECK_EQ(PostQueuedCompletionStatus(c, 9, 99, &mine), 1);
    CHECK_EQ(Collect(c, e, 1), 1u);
    CHECK_EQ(e[0].Key, 99u);
    CHECK_EQ(e[0].Bytes, 9u);
    CHECK(e[0].Ov == &mine);
    CHECK_EQ(mine.Internal, 77u);
    /* closing the port handle cancels the reads still pending */
    CHECK_EQ(FilterClose(h), 0);
    CHECK_EQ(Collect(c, e, READS - QUERIES), READS - QUERIES);
    for (i = 0; i < READS - QUERIES; i++) {
        CHECK_EQ((uint32_t)e[i].Internal, 0xC0000120u); /* STATUS_CANCELLED */
        CHECK(e[i].Ov >= ov + QUERIES && e[i].Ov < ov + READS);
    }
    WaitDisconnected();
    /* closing the completion port ends a wait on it; the handle is gone afterwards */
    StartWaiter(&w, c, &wt);
    CHECK_EQ(CloseHandle(c), 1);
    pthread_join(wt, NULL);
    CHECK(w.Ok == 0 && (w.Err == 735u || w.Err == 6u));
    CHECK_EQ(GetQueuedCompletionStatusEx(c, e, 1, &removed, 0, 0), 0);
    CHECK_EQ(GetLastError(), 6u);
    CHECK_EQ(CloseHandle(c), 0);
    /* a completion port on its own, then a port handle associated with it */
    c2 = CreateIoCompletionPort((void *)(intptr_t)-1, NULL, 0, 1);
    CHECK(c2 != NULL);
    CHECK_EQ(Connect(&h), 0);
    CHECK(CreateIoCompletionPort(h, c2, 5, 1) == c2);
    CHECK_EQ((uint32_t)FilterGetMessage(h, bufs[0], sizeof(bufs[0]), &ov[0]), 0x800703E5u);
    CHECK_EQ(FilterClose(h), 0);
    CHECK_EQ(Collect(c2, e, 1), 1u);
    CHECK_EQ(e[0].Key, 5u);
    CHECK_EQ((uint32_t)e[0].Internal, 0xC0000120u);
    CHECK_EQ(CloseHandle(c2), 1);
    WaitDisconnected();
}


/* The thread waiting on the completion port fetches the messages itself (libfltsim's waiter pump):
 * a message sent while it waits completes a read; a post interrupts its fetch and the pump thread
 * finishes the request it had sent, so no message is lost or delivered twice; closing the handle
 * while a waiter fetches cancels the reads without hanging. */
static void test_port_completion_waiter_fetches(void)
{
    enum { READS = 4 };
    static uint8_t bufs[READS][16 + 4096];
    static OVL ov[READS];
    OVL_ENTRY e[READS];
    DECIDER d1 = { "\\Device\\HarddiskVolume3\\wp1", { 0 } }, d2 = { "\\Device\\HarddiskVolume3\\wp2", { 0 } };
    IOCP_WAITER w;
    OVL mine;
    pthread_t t1, t2, wt;
    void *h, *c;
    uint32_t i, k;
    Start();
    SetTimeout(5000, 10);
    CHECK_EQ(Connect(&h), 0);
    c = CreateIoCompletionPort(h, NULL, 42, 1);
    CHECK(c != NULL);
    /* a waiter that is already waiting when the reads are issued (it has nothing to fetch for
     * until the first) and the message sent gets the message */
    StartWaiter(&w, c, &wt);
    for (i = 0; i < READS; i++)
        CHECK_EQ((uint32_t)FilterGetMessage(h, bufs[i], sizeof(bufs[i]), &ov[i]), 0x800703E5u);
    pthread_create(&t1, NULL, DecideT, &d1);
    pthread_join(wt, NULL);
    CHECK_EQ(w.Ok, 1);
    CHECK_EQ(w.E.Key, 42u);
    CHECK_EQ(w.E.Internal, 0u);
    k = (uint32_t)(w.E.Ov - ov);
    CHECK_EQ(k, 0u); /* the oldest read */
    ReplyAllow(h, bufs[0]);
    pthread_join(t1, NULL);
    CHECK_EQ(d1.V.Source, AGENTSH_SOURCE_BROKER);
    CHECK_EQ(d1.V.Decision, DECISION_ALLOW);
    /* a post interrupts a fetching waiter: it returns the posted packet... */
    StartWaiter(&w, c, &wt);
    memset(&mine, 0, sizeof(mine));
    CHECK_EQ(PostQueuedCompletionStatus(c, 3, 99, &mine), 1);
    pthread_join(wt, NULL);
    CHECK_EQ(w.Ok, 1);
    CHECK_EQ(w.E.Key, 99u);
    CHECK(w.E.Ov == &mine);
    /* ...and the next message still completes the next read, exactly once */
    pthread_create(&t2, NULL, DecideT, &d2);
    CHECK_EQ(Collect(c, e, 1), 1u);
    CHECK_EQ(e[0].Key, 42u);
    CHECK_EQ(e[0].Internal, 0u);
    CHECK(e[0].Ov == &ov[1]);
    ReplyAllow(h, bufs[1]);
    pthread_join(t2, NULL);
    CHECK_EQ(d2.V.Decision, DECISION_ALLOW);
    CHECK_EQ(d2.V.Source, AGENTSH_SOURCE_BROKER);
    /* closing the handle while a waiter fetches: the two reads left are cancelled */
    StartWaiter(&w, c, &wt);
    CHECK_EQ(FilterClose(h), 0);
    pthread_join(wt, NULL);
    CHECK_EQ(w.Ok, 1);
    CHECK_EQ((uint32_t)w.E.Internal, 0xC0000120u); /* STATUS_CANCELLED */
    CHECK_EQ(Collect(c, e, 1), 1u);
    CHECK_EQ((uint32_t)e[0].Internal, 0xC0000120u);
    CHECK_EQ(GetQueuedCompletionStatusEx(c, e, 1, &i, 0, 0), 0); /* nothing else came */
    CHECK_EQ(CloseHandle(c), 1);
    WaitDisconnected();
}

const TEST_CASE gPortTests[] = {
    { "port_connect_magic_version_single_client", test_port_connect_rules },
    { "port_request_reply_framing", test_port_request_reply_framing },
    { "port_status_timeout_and_late_reply", test_port_timeout_and_late_reply },
    { "port_many_blocked_readers_close_disconnect", test_port_many_readers_close_and_disconnect },
    { "port_filter_send_message_commands", test_port_send_message_commands },
    { "port_query_dos_device", test_port_query_dos_device },
    { "port_overlapped_reads_completion_port", test_port_overlapped_reads_completion_port },
    { "port_completion_waiter_fetches", test_port_completion_waiter_fetches },
    { NULL, NULL }
};
