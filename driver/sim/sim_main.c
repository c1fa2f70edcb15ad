/*
 * sim_main.c - agentsh-sim: the minifilter's portable core in a user-mode process, playing the kernel
 * for the broker on Linux/CI. See sim/README.md.
 *
 *   agentsh-sim serve [options]          port socket + control socket, until "shutdown" or SIGTERM
 *   agentsh-sim run --trace FILE [opts]  replay a JSONL trace, report outcomes and latencies
 *   agentsh-sim run --synthetic [opts]   generated workload (rate, paths, hot set, duration)
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "sim_ctl.h"
#include "sim_wire.h"

/* the fltlib ABI, linked statically from fltsim.c, for the built-in responder */
int32_t FilterConnectCommunicationPort(const uint16_t *, uint32_t, const void *, uint16_t, void *, void **);
int32_t FilterGetMessage(void *, void *, uint32_t, void *);
int32_t FilterReplyMessage(void *, void *, uint32_t);
int32_t FilterClose(void *);

static SIM_CTX gCtx;
static volatile sig_atomic_t gSignalled;

static void OnSignal(int s)
{
    (void)s;
    gSignalled = 1;
}

static uint64_t NowNs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void Usage(FILE *f)
{
    fprintf(f,
        "agentsh-sim - the agentsh minifilter core in user mode, with an emulated filter port\n"
        "\n"
        "usage:\n"
        "  agentsh-sim serve [--port-socket P] [--control-socket C] [common options]\n"
        "  agentsh-sim run (--trace FILE | --synthetic) [--json] [common options] [workload options]\n"
        "  agentsh-sim --help\n"
        "\n"
        "common options:\n"
        "  --port-socket PATH     Unix socket of the emulated port (libfltsim connects here);\n"
        "                         default $AGENTSH_SIM_SOCKET or /tmp/agentsh-sim-AgentshPort.sock\n"
        "  --control-socket PATH  JSON-lines control socket (serve; optional for run)\n"
        "  --volume X:=DEVICE     drive letter mapping, repeatable; defaults C:=\\Device\\HarddiskVolume3,\n"
        "                         D:=\\Device\\HarddiskVolume4\n"
        "  --user-sid SID         SID used for HKCU (default S-1-5-21-1000000000-1000000000-1000000000-1001)\n"
        "  --no-audit             no MSG_AUDIT_EVENT after registry operations (else sent when the config asks)\n"
        "  --responder MODE       built-in port client: none (default; wait for the broker) | allow | deny\n"
        "  --deny-substring TEXT  built-in responder denies paths containing TEXT (ASCII, any case)\n"
        "  --responder-ttl MS     TTL the built-in responder returns (default: AGENTSH_TTL_DEFAULT)\n"
        "  --responder-delay-us N built-in responder answers after N microseconds\n"
        "  --config k=v[,k=v...]  SET_CONFIG at start: fail_mode=open|closed, timeout_ms, max_failures,\n"
        "                         cache_max_entries, cache_default_ttl_ms, cache_max_ttl_ms, probe_interval_ms\n"
        "\n"
        "run options:\n"
        "  --trace FILE           JSONL, one control command per line (see sim/README.md; '-' = stdin)\n"
        "  --synthetic            generated workload:\n"
        "    --rate N             operations per second, all threads together (0 = unpaced; default 1000)\n"
        "    --duration S         seconds measured (default 5)\n"
        "    --warmup S           seconds run first and not measured (default 0)\n"
        "    --paths N            distinct paths (default 1000)\n"
        "    --hot-set N          size of the hot set (default paths/10)\n"
        "    --hot-share F        share of operations on the hot set, 0..1 (default 0.9)\n"
        "    --registry-share F   share of registry operations (default 0.1)\n"
        "    --write-share F      share of file writes among file operations (default 0.3)\n"
        "    --sessions N         sessions, each a 3-process tree (default 1)\n"
        "    --threads N          issuing threads (default 2)\n"
        "  --wait-client S        seconds to wait for a port client before starting (default 10)\n"
        "  --json                 print the report as one JSON object\n");
}

/* ------------------------------------------------------------------------------------------------
 * Built-in responder: a port client written against the fltlib ABI
 * ---------------------------------------------------------------------------------------------- */
typedef struct RESPONDER {
    int Mode;              /* 0 none, 1 allow, 2 deny */
    char DenySubstring[256];
    uint32_t Ttl;
    uint32_t DelayUs;
    void *Port;
    int Threads;
    pthread_t Thread[4];
    volatile int Stop;
} RESPONDER;

static RESPONDER gResponder = { 0, "", AGENTSH_TTL_DEFAULT, 0, NULL, 0, { 0 }, 0 };

static int ContainsAsciiCI(const uint16_t *s, uint32_t n, const char *needle)
{
    size_t m = strlen(needle), i, j;
    if (m == 0 || m > n) return 0;
    for (i = 0; i + m <= n; i++) {
        for (j = 0; j < m; j++) {
            uint16_t c = s[i + j];
            char d = needle[j];
            if (c >= 'a' && c <= 'z') c = (uint16_t)(c - 32);
            if (d >= 'a' && d <= 'z') d = (char)(d - 32);
            if (c != (uint16_t)(unsigned char)d) break;
        }
        if (j == m) return 1;
    }
    return 0;
}

static void *ResponderThread(void *arg)
{
    RESPONDER *r = (RESPONDER *)arg;
    uint8_t *buf = (uint8_t *)malloc(16 + AGENTSH_MAX_MESSAGE_SIZE);
    while (buf && !r->Stop) {
        FILTER_MESSAGE_HEADER fh;
        AGENTSH_MESSAGE_HEADER h;
        AGENTSH_REPLY_MESSAGE reply;
        uint32_t type = 0, decision;
        int32_t hr = FilterGetMessage(r->Port, buf, 16 + AGENTSH_MAX_MESSAGE_SIZE, NULL);
        if (hr != 0) {
            if (r->Stop) break;
            usleep(1000);
            continue;
        }
        memcpy(&fh, buf, 16);
        if (fh.ReplyLength == 0) continue; /* notification */
        memcpy(&h, buf + 16, 16);
        decision = r->Mode == 2 ? DECISION_DENY : DECISION_ALLOW;
        if (AgentshValidateMessage(buf + 16, h.Size, &type) == STATUS_SUCCESS && r->DenySubstring[0]) {
            AGENTSH_STRING s;
            AGENTSH_USTR u;
            memcpy(&s, buf + 16 + 48, sizeof(s)); /* Path / KeyPath: same offset in both requests */
            u = AgentshMessageString(buf + 16, &s);
            if (ContainsAsciiCI(u.Buffer, u.Length, r->DenySubstring)) decision = DECISION_DENY;
        }
        memset(&reply, 0, sizeof(reply));
        reply.ReplyHeader.MessageId = fh.MessageId;
        reply.Response.Header.Type = MSG_POLICY_RESPONSE;
        reply.Response.Header.Size = sizeof(reply.Response);
        reply.Response.Header.RequestId = h.RequestId;
        reply.Response.Decision = decision;
        reply.Response.CacheTTLMs = r->Ttl;
        if (r->DelayUs) usleep(r->DelayUs);
        (void)FilterReplyMessage(r->Port, &reply, sizeof(reply));
    }
    free(buf);
    return NULL;
}

static int ResponderStart(RESPONDER *r, const char *socketPath)
{
    AGENTSH_CONNECT_CONTEXT c = { AGENTSH_CONNECT_MAGIC, AGENTSH_PROTOCOL_VERSION, (uint32_t)getpid(), 0 };
    int32_t hr;
    int i;
    if (r->Mode == 0) return 0;
    setenv("AGENTSH_SIM_SOCKET", socketPath, 1);
    hr = FilterConnectCommunicationPort((const uint16_t *)u"\\AgentshPort", 0, &c, sizeof(c), NULL, &r->Port);
    if (hr != 0) {
        fprintf(stderr, "agentsh-sim: built-in responder cannot connect: HRESULT 0x%08X\n", (unsigned)hr);
        return -1;
    }
    r->Threads = 2;
    for (i = 0; i < r->Threads; i++) pthread_create(&r->Thread[i], NULL, ResponderThread, r);
    return 0;
}

static void ResponderStop(RESPONDER *r)
{
    int i;
    if (r->Port == NULL) return;
    r->Stop = 1;
    FilterClose(r->Port); /* unblocks FilterGetMessage with ERROR_OPERATION_ABORTED */
    for (i = 0; i < r->Threads; i++) pthread_join(r->Thread[i], NULL);
    r->Port = NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Control socket
 * ---------------------------------------------------------------------------------------------- */
typedef struct { int Fd; } CTL_CONN;

static void *NotifyThread(void *arg)
{
    SIM_CTX *ctx = (SIM_CTX *)arg;
    while (AgentshCoreRunNotifications(&ctx->Core, AGENTSH_NOTIFY_WAIT_MS)) {
    }
    return NULL;
}

static void *ControlConnThread(void *arg)
{
    int fd = ((CTL_CONN *)arg)->Fd;
    size_t cap = 1 << 20, len = 0;
    char *buf = (char *)malloc(cap);
    JBUF out;
    free(arg);
    JbInit(&out);
    while (buf) {
        ssize_t r;
        char *nl;
        if (len == cap) {
            const char *msg = "{\"error\":\"line longer than 1 MiB\"}\n";
            (void)send(fd, msg, strlen(msg), MSG_NOSIGNAL);
            break;
        }
        r = recv(fd, buf + len, cap - len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
        while ((nl = memchr(buf, '\n', len)) != NULL) {
            size_t lineLen = (size_t)(nl - buf);
            int stop;
            out.Len = 0;
            if (lineLen == 0 || (lineLen == 1 && buf[0] == '\r')) {
                memmove(buf, nl + 1, len - lineLen - 1);
                len -= lineLen + 1;
                continue;
            }
            stop = SimExecute(&gCtx, buf, lineLen, &out, NULL);
            JbRaw(&out, "\n");
            (void)send(fd, out.P, out.Len, MSG_NOSIGNAL);
            memmove(buf, nl + 1, len - lineLen - 1);
            len -= lineLen + 1;
            if (stop) gCtx.Stop = 1;
        }
    }
    JbFree(&out);
    free(buf);
    close(fd);
    return NULL;
}

static int gControlFd = -1;

static void *ControlAcceptThread(void *arg)
{
    (void)arg;
    while (!gCtx.Stop) {
        int fd = accept4(gControlFd, NULL, NULL, SOCK_CLOEXEC);
        CTL_CONN *c;
        pthread_t t;
        if (fd < 0) {
            if (gCtx.Stop) break;
            if (errno == EINTR || errno == ECONNABORTED) continue;
            usleep(10000);
            continue;
        }
        c = (CTL_CONN *)malloc(sizeof(*c));
        if (!c) { close(fd); continue; }
        c->Fd = fd;
        if (pthread_create(&t, NULL, ControlConnThread, c) != 0) { close(fd); free(c); continue; }
        pthread_detach(t);
    }
    return NULL;
}

static int ControlStart(const char *path)
{
    struct sockaddr_un a;
    pthread_t t;
    gControlFd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (gControlFd < 0 || strlen(path) >= sizeof(a.sun_path)) return -1;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    unlink(path);
    if (bind(gControlFd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(gControlFd, 64) != 0) return -1;
    if (pthread_create(&t, NULL, ControlAcceptThread, NULL) != 0) return -1;
    pthread_detach(t);
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * Workload report
 * ---------------------------------------------------------------------------------------------- */
typedef struct { uint64_t *V; size_t N, Cap; } LAT;

static void LatAdd(LAT *l, uint64_t v)
{
    if (l->N == l->Cap) {
        l->Cap = l->Cap ? l->Cap * 2 : 1024;
        l->V = (uint64_t *)realloc(l->V, l->Cap * sizeof(uint64_t));
        if (!l->V) abort();
    }
    l->V[l->N++] = v;
}

static int CmpU64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t Pct(LAT *l, double p)
{
    size_t i;
    if (l->N == 0) return 0;
    i = (size_t)ceil(p * (double)l->N) - 1;
    if (i >= l->N) i = l->N - 1;
    return l->V[i];
}

#define NSRC 5
typedef struct STATS {
    pthread_mutex_t Mu;
    LAT Cat[2][NSRC];      /* [decision][source] */
    LAT All;
    uint64_t Kind[3];
    uint64_t Errors;
    uint64_t Commands;
} STATS;

static STATS gStats = { PTHREAD_MUTEX_INITIALIZER, { { { 0 } } }, { 0 }, { 0 }, 0, 0 };
/* --warmup: operations before this time run but are not recorded (steady state only). */
static uint64_t gRecordFromNs;

static void Record(const SIM_RESULT *r, int isError)
{
    if (NowNs() < __atomic_load_n(&gRecordFromNs, __ATOMIC_RELAXED)) return;
    pthread_mutex_lock(&gStats.Mu);
    gStats.Commands++;
    if (isError) gStats.Errors++;
    if (r->IsOp) {
        LatAdd(&gStats.Cat[r->Decision == DECISION_ALLOW ? 0 : 1][r->Source < NSRC ? r->Source : 4], r->LatencyNs);
        LatAdd(&gStats.All, r->LatencyNs);
        gStats.Kind[r->Kind < 3 ? r->Kind : 0]++;
    }
    pthread_mutex_unlock(&gStats.Mu);
}

static void Report(int json, double seconds)
{
    int d, s;
    JBUF out;
    JbInit(&out);
    for (d = 0; d < 2; d++) for (s = 0; s < NSRC; s++) qsort(gStats.Cat[d][s].V, gStats.Cat[d][s].N, 8, CmpU64);
    qsort(gStats.All.V, gStats.All.N, 8, CmpU64);
    if (json) {
        JbFmt(&out, "{\"seconds\":%.3f,\"commands\":%llu,\"errors\":%llu,\"operations\":%zu,\"file\":%llu,"
                    "\"registry\":%llu,\"ops_per_second\":%.1f,\"latency_us\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,"
                    "\"max\":%.2f},\"outcomes\":[",
              seconds, (unsigned long long)gStats.Commands, (unsigned long long)gStats.Errors, gStats.All.N,
              (unsigned long long)gStats.Kind[1], (unsigned long long)gStats.Kind[2],
              seconds > 0 ? (double)gStats.All.N / seconds : 0.0, Pct(&gStats.All, .5) / 1e3,
              Pct(&gStats.All, .9) / 1e3, Pct(&gStats.All, .99) / 1e3,
              gStats.All.N ? gStats.All.V[gStats.All.N - 1] / 1e3 : 0.0);
        {
            int first = 1;
            for (d = 0; d < 2; d++) {
                for (s = 0; s < NSRC; s++) {
                    LAT *l = &gStats.Cat[d][s];
                    if (!l->N) continue;
                    JbFmt(&out, "%s{\"result\":\"%s\",\"source\":\"%s\",\"count\":%zu,\"p50_us\":%.2f,\"p90_us\":%.2f,"
                                "\"p99_us\":%.2f,\"max_us\":%.2f}",
                          first ? "" : ",", d ? "deny" : "allow", SimSourceName((uint32_t)s), l->N, Pct(l, .5) / 1e3,
                          Pct(l, .9) / 1e3, Pct(l, .99) / 1e3, l->V[l->N - 1] / 1e3);
                    first = 0;
                }
            }
        }
        JbRaw(&out, "],");
        {
            JBUF m;
            JbInit(&m);
            SimExecute(&gCtx, "{\"cmd\":\"metrics\"}", 17, &m, NULL);
            /* {"metrics":{...},"notifications":{...},"port":{...}} -> splice the members */
            if (m.Len > 2) {
                m.P[m.Len - 1] = 0;
                JbRaw(&out, m.P + 1);
            }
            JbFree(&m);
        }
        JbRaw(&out, "}\n");
        fputs(out.P, stdout);
    } else {
        AGENTSH_METRICS mt;
        printf("agentsh-sim: %zu operations in %.2f s (%.0f ops/s), %llu file, %llu registry, %llu command errors\n\n",
               gStats.All.N, seconds, seconds > 0 ? (double)gStats.All.N / seconds : 0.0,
               (unsigned long long)gStats.Kind[1], (unsigned long long)gStats.Kind[2],
               (unsigned long long)gStats.Errors);
        printf("%-8s %-10s %10s %10s %10s %10s %10s\n", "result", "source", "count", "p50_us", "p90_us", "p99_us",
               "max_us");
        for (d = 0; d < 2; d++) {
            for (s = 0; s < NSRC; s++) {
                LAT *l = &gStats.Cat[d][s];
                if (!l->N) continue;
                printf("%-8s %-10s %10zu %10.2f %10.2f %10.2f %10.2f\n", d ? "deny" : "allow",
                       SimSourceName((uint32_t)s), l->N, Pct(l, .5) / 1e3, Pct(l, .9) / 1e3, Pct(l, .99) / 1e3,
                       l->V[l->N - 1] / 1e3);
            }
        }
        printf("%-8s %-10s %10zu %10.2f %10.2f %10.2f %10.2f\n\n", "all", "", gStats.All.N, Pct(&gStats.All, .5) / 1e3,
               Pct(&gStats.All, .9) / 1e3, Pct(&gStats.All, .99) / 1e3,
               gStats.All.N ? gStats.All.V[gStats.All.N - 1] / 1e3 : 0.0);
        AgentshCoreGetMetrics(&gCtx.Core, &mt);
        printf("driver metrics: hits %llu misses %llu evictions %llu expired %llu collapsed %llu | queries file %llu "
               "registry %llu | timeouts %llu failures %llu | allow %llu deny %llu pending %llu | failmode %llu "
               "entries %llu probes %llu | excluded ops %llu | cache %u/%u sessions %u processes %u | fail state %s, "
               "client %s\n",
               (unsigned long long)mt.CacheHitCount, (unsigned long long)mt.CacheMissCount,
               (unsigned long long)mt.CacheEvictionCount, (unsigned long long)mt.CacheExpiredCount,
               (unsigned long long)mt.CacheCollapsedCount, (unsigned long long)mt.FilePolicyQueries,
               (unsigned long long)mt.RegistryPolicyQueries, (unsigned long long)mt.PolicyQueryTimeouts,
               (unsigned long long)mt.PolicyQueryFailures, (unsigned long long)mt.AllowDecisions,
               (unsigned long long)mt.DenyDecisions, (unsigned long long)mt.PendingDecisions,
               (unsigned long long)mt.FailModeDecisions, (unsigned long long)mt.FailModeEntries,
               (unsigned long long)mt.ProbeCount, (unsigned long long)mt.ExcludedOperations, mt.CacheEntryCount,
               mt.CacheCapacity, mt.ActiveSessions, mt.TrackedProcesses,
               mt.FailState == FAIL_STATE_FAILING ? "FAILING" : "NORMAL", mt.ClientConnected ? "connected" : "none");
    }
    JbFree(&out);
}

static int RunLine(const char *line, size_t len)
{
    JBUF out;
    SIM_RESULT r;
    int stop;
    JbInit(&out);
    stop = SimExecute(&gCtx, line, len, &out, &r);
    Record(&r, out.Len > 9 && !strncmp(out.P, "{\"error\"", 8));
    if (out.Len > 9 && !strncmp(out.P, "{\"error\"", 8)) fprintf(stderr, "agentsh-sim: %.*s -> %s\n", (int)len, line, out.P);
    JbFree(&out);
    return stop;
}

static int RunTrace(const char *file)
{
    FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    if (!f) {
        fprintf(stderr, "agentsh-sim: cannot open %s: %s\n", file, strerror(errno));
        return -1;
    }
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (n == 0 || line[0] == '#') continue;
        if (RunLine(line, (size_t)n)) break;
    }
    free(line);
    if (f != stdin) fclose(f);
    return 0;
}

typedef struct SYNTH {
    double Rate, Duration, HotShare, RegistryShare, WriteShare, Warmup;
    uint32_t Paths, HotSet, Sessions, Threads;
} SYNTH;

typedef struct { SYNTH *S; uint32_t Id; uint64_t Seed; } SYNTH_THREAD;

static uint64_t Rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double Uniform(uint64_t *s) { return (double)(Rng(s) >> 11) / 9007199254740992.0; }

static void *SynthThread(void *arg)
{
    SYNTH_THREAD *t = (SYNTH_THREAD *)arg;
    SYNTH *s = t->S;
    uint64_t start = NowNs(), end = start + (uint64_t)((s->Warmup + s->Duration) * 1e9), next = start;
    double interval = s->Rate > 0 ? 1e9 * s->Threads / s->Rate : 0;
    char line[512];
    while (NowNs() < end && !gSignalled) {
        uint32_t sess = (uint32_t)(Rng(&t->Seed) % s->Sessions);
        uint32_t pid = 4000 + 400 * sess + 4 * (uint32_t)(Rng(&t->Seed) % 3);
        uint32_t idx;
        int n;
        if (interval > 0) {
            uint64_t now = NowNs();
            if (now < next) {
                struct timespec ts = { (time_t)((next - now) / 1000000000ull), (long)((next - now) % 1000000000ull) };
                nanosleep(&ts, NULL);
            }
            next += (uint64_t)interval;
        }
        if (s->Paths <= s->HotSet || Uniform(&t->Seed) < s->HotShare) idx = (uint32_t)(Rng(&t->Seed) % s->HotSet);
        else idx = s->HotSet + (uint32_t)(Rng(&t->Seed) % (s->Paths - s->HotSet));
        if (Uniform(&t->Seed) < s->RegistryShare) {
            n = snprintf(line, sizeof line,
                         "{\"cmd\":\"registry\",\"pid\":%u,\"op\":\"%s\",\"key\":\"HKCU\\\\Software\\\\agentsh\\\\s%u\\\\k%u\","
                         "\"value\":\"v%u\"}",
                         pid, Uniform(&t->Seed) < s->WriteShare ? "set_value" : "query_value", sess, idx % 997, idx);
        } else {
            n = snprintf(line, sizeof line,
                         "{\"cmd\":\"file\",\"pid\":%u,\"op\":\"%s\",\"path\":\"C:\\\\work\\\\s%u\\\\dir%u\\\\file%u.c\"}",
                         pid, Uniform(&t->Seed) < s->WriteShare ? "write" : "read", sess, idx % 64, idx);
        }
        RunLine(line, (size_t)n);
    }
    return NULL;
}

static void RunSynthetic(SYNTH *s)
{
    SYNTH_THREAD t[64];
    pthread_t th[64];
    uint32_t i;
    char line[256];
    for (i = 0; i < s->Sessions; i++) {
        uint32_t root = 4000 + 400 * i;
        int n = snprintf(line, sizeof line, "{\"cmd\":\"register\",\"token\":%u,\"root\":%u,\"workspace\":\"C:\\\\work\\\\s%u\"}",
                         i + 1, root, i);
        RunLine(line, (size_t)n);
        n = snprintf(line, sizeof line, "{\"cmd\":\"spawn\",\"pid\":%u,\"creator\":%u,\"image\":\"C:\\\\bin\\\\cl.exe\"}",
                     root + 4, root);
        RunLine(line, (size_t)n);
        n = snprintf(line, sizeof line, "{\"cmd\":\"spawn\",\"pid\":%u,\"creator\":%u,\"image\":\"C:\\\\bin\\\\link.exe\"}",
                     root + 8, root + 4);
        RunLine(line, (size_t)n);
    }
    /* setup lines are not part of the measured workload */
    pthread_mutex_lock(&gStats.Mu);
    gStats.Commands = 0;
    pthread_mutex_unlock(&gStats.Mu);
    __atomic_store_n(&gRecordFromNs, NowNs() + (uint64_t)(s->Warmup * 1e9), __ATOMIC_RELAXED);
    for (i = 0; i < s->Threads; i++) {
        t[i].S = s;
        t[i].Id = i;
        t[i].Seed = 0x9E3779B97F4A7C15ull * (i + 1);
        pthread_create(&th[i], NULL, SynthThread, &t[i]);
    }
    for (i = 0; i < s->Threads; i++) pthread_join(th[i], NULL);
}

/* ------------------------------------------------------------------------------------------------ */

static int ApplyConfig(const char *spec)
{
    char line[1024], *copy = strdup(spec), *tok, *save = NULL;
    size_t n = (size_t)snprintf(line, sizeof line, "{\"cmd\":\"config\"");
    JBUF out;
    int bad;
    for (tok = strtok_r(copy, ",", &save); tok && n < sizeof line; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) { free(copy); return -1; }
        *eq = 0;
        if (!strcmp(tok, "fail_mode")) n += (size_t)snprintf(line + n, sizeof line - n, ",\"%s\":\"%s\"", tok, eq + 1);
        else n += (size_t)snprintf(line + n, sizeof line - n, ",\"%s\":%s", tok, eq + 1);
    }
    free(copy);
    if (n >= sizeof line - 2) return -1;
    n += (size_t)snprintf(line + n, sizeof line - n, "}");
    JbInit(&out);
    SimExecute(&gCtx, line, n, &out, NULL);
    bad = !strncmp(out.P, "{\"error\"", 8);
    if (bad) fprintf(stderr, "agentsh-sim: --config rejected: %s\n", out.P);
    JbFree(&out);
    return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : NULL;
    const char *portSocket = NULL, *controlSocket = NULL, *trace = NULL, *config = NULL;
    char defaultSocket[108], volumes[2048];
    int json = 0, synthetic = 0, i, volumesGiven = 0;
    double waitClient = 10;
    SYNTH syn = { 1000, 5, 0.9, 0.1, 0.3, 0, 1000, 0, 1, 2 };
    pthread_t notify;
    uint64_t t0;

    if (!mode || !strcmp(mode, "--help") || !strcmp(mode, "-h") || !strcmp(mode, "help")) {
        Usage(stdout);
        return mode ? 0 : 2;
    }
    if (strcmp(mode, "serve") && strcmp(mode, "run")) {
        fprintf(stderr, "agentsh-sim: unknown command '%s' (serve | run | --help)\n", mode);
        return 2;
    }
    SimCtxInit(&gCtx);
    for (i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() do { if (!v) { fprintf(stderr, "agentsh-sim: %s needs a value\n", a); return 2; } i++; } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { Usage(stdout); return 0; }
        else if (!strcmp(a, "--port-socket")) { NEED(); portSocket = v; }
        else if (!strcmp(a, "--control-socket")) { NEED(); controlSocket = v; }
        else if (!strcmp(a, "--volume")) {
            NEED();
            if (SimAddVolume(&gCtx, v) != 0) { fprintf(stderr, "agentsh-sim: bad --volume %s (X:=\\Device\\...)\n", v); return 2; }
            volumesGiven = 1;
        }
        else if (!strcmp(a, "--user-sid")) { NEED(); snprintf(gCtx.DefaultSid, sizeof gCtx.DefaultSid, "%s", v); }
        else if (!strcmp(a, "--no-audit")) gCtx.Audit = 0;
        else if (!strcmp(a, "--responder")) {
            NEED();
            if (!strcmp(v, "none")) gResponder.Mode = 0;
            else if (!strcmp(v, "allow")) gResponder.Mode = 1;
            else if (!strcmp(v, "deny")) gResponder.Mode = 2;
            else { fprintf(stderr, "agentsh-sim: --responder none|allow|deny\n"); return 2; }
        }
        else if (!strcmp(a, "--deny-substring")) { NEED(); snprintf(gResponder.DenySubstring, sizeof gResponder.DenySubstring, "%s", v); }
        else if (!strcmp(a, "--responder-ttl")) { NEED(); gResponder.Ttl = !strcmp(v, "default") ? AGENTSH_TTL_DEFAULT : (uint32_t)strtoul(v, NULL, 10); }
        else if (!strcmp(a, "--responder-delay-us")) { NEED(); gResponder.DelayUs = (uint32_t)strtoul(v, NULL, 10); }
        else if (!strcmp(a, "--config")) { NEED(); config = v; }
        else if (!strcmp(a, "--trace")) { NEED(); trace = v; }
        else if (!strcmp(a, "--synthetic")) synthetic = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--wait-client")) { NEED(); waitClient = atof(v); }
        else if (!strcmp(a, "--rate")) { NEED(); syn.Rate = atof(v); }
        else if (!strcmp(a, "--duration")) { NEED(); syn.Duration = atof(v); }
        else if (!strcmp(a, "--warmup")) { NEED(); syn.Warmup = atof(v); }
        else if (!strcmp(a, "--paths")) { NEED(); syn.Paths = (uint32_t)strtoul(v, NULL, 10); }
        else if (!strcmp(a, "--hot-set")) { NEED(); syn.HotSet = (uint32_t)strtoul(v, NULL, 10); }
        else if (!strcmp(a, "--hot-share")) { NEED(); syn.HotShare = atof(v); }
        else if (!strcmp(a, "--registry-share")) { NEED(); syn.RegistryShare = atof(v); }
        else if (!strcmp(a, "--write-share")) { NEED(); syn.WriteShare = atof(v); }
        else if (!strcmp(a, "--sessions")) { NEED(); syn.Sessions = (uint32_t)strtoul(v, NULL, 10); }
        else if (!strcmp(a, "--threads")) { NEED(); syn.Threads = (uint32_t)strtoul(v, NULL, 10); }
        else { fprintf(stderr, "agentsh-sim: unknown option %s (see --help)\n", a); return 2; }
#undef NEED
    }
    if (!strcmp(mode, "run") && !trace && !synthetic) {
        fprintf(stderr, "agentsh-sim run: give --trace FILE or --synthetic\n");
        return 2;
    }
    if (syn.Paths == 0 || syn.Sessions == 0 || syn.Sessions > 100 || syn.Threads == 0 || syn.Threads > 64 ||
        syn.HotShare < 0 || syn.HotShare > 1 || syn.RegistryShare < 0 || syn.RegistryShare > 1 || syn.Duration <= 0 ||
        syn.Warmup < 0) {
        fprintf(stderr, "agentsh-sim: workload options out of range\n");
        return 2;
    }
    if (syn.HotSet == 0) syn.HotSet = syn.Paths / 10 ? syn.Paths / 10 : 1;
    if (syn.HotSet > syn.Paths) syn.HotSet = syn.Paths;
    if (!volumesGiven) {
        SimAddVolume(&gCtx, "C:=\\Device\\HarddiskVolume3");
        SimAddVolume(&gCtx, "D:=\\Device\\HarddiskVolume4");
    }
    if (!portSocket) {
        const char *env = getenv("AGENTSH_SIM_SOCKET");
        if (env && *env) portSocket = env;
        else {
            SimDefaultSocketPath("\\AgentshPort", defaultSocket, sizeof defaultSocket);
            portSocket = defaultSocket;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, OnSignal);
    signal(SIGTERM, OnSignal);

    if (AgentshCoreInit(&gCtx.Core, SimPortSend, &gCtx.Port, NULL, NULL) != STATUS_SUCCESS) {
        fprintf(stderr, "agentsh-sim: core init failed\n");
        return 1;
    }
    SimVolumesText(&gCtx, volumes, sizeof volumes);
    if (SimPortStart(&gCtx.Port, &gCtx.Core, portSocket, volumes) != 0) {
        fprintf(stderr, "agentsh-sim: cannot listen on %s: %s\n", portSocket, strerror(errno));
        return 1;
    }
    if (controlSocket && ControlStart(controlSocket) != 0) {
        fprintf(stderr, "agentsh-sim: cannot listen on %s: %s\n", controlSocket, strerror(errno));
        return 1;
    }
    if (config && ApplyConfig(config) != 0) return 2;
    pthread_create(&notify, NULL, NotifyThread, &gCtx);
    if (ResponderStart(&gResponder, portSocket) != 0) return 1;

    if (!strcmp(mode, "serve")) {
        fprintf(stderr, "agentsh-sim: serving port %s%s%s\n", portSocket, controlSocket ? ", control " : "",
                controlSocket ? controlSocket : "");
        while (!gCtx.Stop && !gSignalled) usleep(50000);
    } else {
        double waited = 0;
        while (!SimPortConnected(&gCtx.Port, NULL) && waited < waitClient && !gSignalled) {
            usleep(50000);
            waited += 0.05;
        }
        if (!SimPortConnected(&gCtx.Port, NULL)) {
            fprintf(stderr, "agentsh-sim: no port client connected; decisions will come from the fail mode\n");
        }
        t0 = NowNs();
        if (trace) RunTrace(trace);
        else RunSynthetic(&syn);
        if (t0 < gRecordFromNs) t0 = gRecordFromNs;
        Report(json, (double)(NowNs() - t0) / 1e9);
    }
    ResponderStop(&gResponder);
    AgentshCoreStopNotifications(&gCtx.Core);
    pthread_join(notify, NULL);
    SimPortStop(&gCtx.Port);
    if (controlSocket) {
        gCtx.Stop = 1;
        shutdown(gControlFd, SHUT_RDWR);
        close(gControlFd);
        unlink(controlSocket);
    }
    /* connection threads may still reference the core: the process exits without tearing it down */
    fflush(stdout);
    _exit(0);
}
