/* bench_cache.c - per-operation cost of the decision path, measured with clock_gettime around each
 * call (warm cache, many iterations). Prints a table to stderr and one JSON object on stdout.
 *   cache_hit_ns_*        AgentshCoreDecide on a cached key (exclusion check, pid lookup, key fold +
 *                         hash, LRU move-to-front): what a hit costs a kernel callback after the name query
 *   cache_miss_ns_p99     key build + lookup of an absent key (the part of a miss before the port)
 *   decide_miss_inproc_ns AgentshCoreDecide miss with an in-process responder (no port, no IPC)  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "agentsh_core.h"

static NTSTATUS InprocSend(void *ctx, const void *msg, UINT32 size, void *reply, UINT32 *len, UINT32 timeout)
{
    AGENTSH_MESSAGE_HEADER h;
    AGENTSH_POLICY_RESPONSE r;
    (void)ctx; (void)size; (void)timeout;
    if (!reply) return STATUS_SUCCESS;
    memcpy(&h, msg, sizeof h);
    memset(&r, 0, sizeof r);
    r.Header.Type = MSG_POLICY_RESPONSE;
    r.Header.Size = sizeof r;
    r.Header.RequestId = h.RequestId;
    r.Decision = DECISION_ALLOW;
    r.CacheTTLMs = 3600000;
    memcpy(reply, &r, sizeof r);
    *len = sizeof r;
    return STATUS_SUCCESS;
}

static inline uint64_t Ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int Cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t Pct(uint64_t *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)n);
    return v[i >= n ? n - 1 : i];
}

static int MakePath(uint16_t *out, unsigned i, int miss)
{
    char a[160];
    int n = snprintf(a, sizeof a, "\\Device\\HarddiskVolume3\\Users\\dev\\src\\%s\\module%u\\file%u.c",
                     miss ? "other" : "project", i % 97, i), k;
    for (k = 0; k < n; k++) out[k] = (uint16_t)a[k];
    return n;
}

static AGENTSH_CORE gCore;

static void Setup(UINT32 capacity, unsigned entries)
{
    AGENTSH_SESSION_REGISTER r;
    AGENTSH_CONFIG c;
    UINT32 n;
    uint8_t out[64];
    unsigned i;
    uint16_t path[200];
    if (AgentshCoreInit(&gCore, InprocSend, NULL, NULL, NULL) != STATUS_SUCCESS) abort();
    AgentshCoreClientConnected(&gCore, 1);
    memset(&r, 0, sizeof r);
    r.Header.Type = MSG_REGISTER_SESSION; r.Header.Size = sizeof r; r.SessionToken = 7; r.RootProcessId = 100;
    (void)AgentshCoreDispatch(&gCore, &r, sizeof r, out, sizeof out, &n);
    memset(&c, 0, sizeof c);
    c.Header.Type = MSG_SET_CONFIG; c.Header.Size = sizeof c; c.PolicyQueryTimeoutMs = 5000; c.MaxConsecutiveFailures = 10;
    c.CacheMaxEntries = capacity; c.CacheDefaultTTLMs = 3600000; c.CacheMaxTTLMs = 3600000; c.ProbeIntervalMs = 1000;
    if (AgentshCoreDispatch(&gCore, &c, sizeof c, out, sizeof out, &n) != STATUS_SUCCESS) abort();
    for (i = 0; i < entries; i++) {
        AGENTSH_DECIDE_REQUEST q;
        AGENTSH_VERDICT v;
        memset(&q, 0, sizeof q);
        q.Kind = AGENTSH_KIND_FILE; q.ProcessId = 100; q.Operation = FILE_OP_WRITE;
        q.Strings[0].Buffer = path;
        q.Strings[0].Length = (UINT32)MakePath(path, i, 0);
        AgentshCoreDecide(&gCore, &q, &v);
    }
}

static void Hits(unsigned entries, size_t iters, uint64_t *lat)
{
    uint64_t seed = 88172645463325252ull;
    uint16_t path[200];
    size_t it;
    for (it = 0; it < iters; it++) {
        AGENTSH_DECIDE_REQUEST q;
        AGENTSH_VERDICT v;
        uint64_t t0;
        unsigned i;
        seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
        i = (unsigned)(seed % entries);
        memset(&q, 0, sizeof q);
        q.Kind = AGENTSH_KIND_FILE; q.ProcessId = 100; q.Operation = FILE_OP_WRITE;
        q.Strings[0].Buffer = path;
        q.Strings[0].Length = (UINT32)MakePath(path, i, 0);
        t0 = Ns();
        AgentshCoreDecide(&gCore, &q, &v);
        lat[it] = Ns() - t0;
        if (v.Source != AGENTSH_SOURCE_CACHE) { fprintf(stderr, "bench: expected a hit\n"); exit(1); }
    }
    qsort(lat, iters, 8, Cmp);
}

int main(void)
{
    const size_t iters = 300000;
    uint64_t *lat = malloc(iters * 8), *lat2 = malloc(iters * 8), *miss = malloc(iters * 8), *dm = malloc(20000 * 8);
    uint64_t clk[1000];
    uint64_t h50, h99, h99b, m99, d99;
    size_t it;
    uint16_t path[200];
    for (it = 0; it < 1000; it++) { uint64_t a = Ns(); clk[it] = Ns() - a; }
    qsort(clk, 1000, 8, Cmp);

    Setup(4096, 4096);
    Hits(4096, iters / 10, lat);          /* warm-up */
    Hits(4096, iters, lat);
    h50 = Pct(lat, iters, .5);
    h99 = Pct(lat, iters, .99);
    for (it = 0; it < iters; it++) {
        AGENTSH_CACHE_KEY k;
        AGENTSH_USTR p, none = AGENTSH_USTR_EMPTY;
        UINT32 d;
        uint64_t t0;
        p.Buffer = path;
        p.Length = (UINT32)MakePath(path, (unsigned)it, 1);
        t0 = Ns();
        if (AgentshCacheKeyInit(&k, 7, AGENTSH_KIND_FILE, FILE_OP_WRITE, &p, &none, &none) == STATUS_SUCCESS) {
            (void)AgentshCacheLookup(&gCore.Cache, &k, AgentshCoreNow(&gCore), &d);
            AgentshCacheKeyFree(&k);
        }
        miss[it] = Ns() - t0;
    }
    qsort(miss, iters, 8, Cmp);
    m99 = Pct(miss, iters, .99);
    for (it = 0; it < 20000; it++) {
        AGENTSH_DECIDE_REQUEST q;
        AGENTSH_VERDICT v;
        uint64_t t0;
        memset(&q, 0, sizeof q);
        q.Kind = AGENTSH_KIND_FILE; q.ProcessId = 100; q.Operation = FILE_OP_READ;
        q.Strings[0].Buffer = path;
        q.Strings[0].Length = (UINT32)MakePath(path, (unsigned)it + 1000000u, 1);
        t0 = Ns();
        AgentshCoreDecide(&gCore, &q, &v);
        dm[it] = Ns() - t0;
    }
    qsort(dm, 20000, 8, Cmp);
    d99 = Pct(dm, 20000, .99);
    AgentshCoreDestroy(&gCore);

    Setup(100000, 100000);
    Hits(100000, iters / 10, lat2);
    Hits(100000, iters, lat2);
    h99b = Pct(lat2, iters, .99);
    AgentshCoreDestroy(&gCore);

    fprintf(stderr, "bench-cache: %zu iterations each, clock_gettime overhead p50 %llu ns (included)\n", iters,
            (unsigned long long)clk[500]);
    fprintf(stderr, "  cache hit   4096 entries    p50 %6llu ns  p99 %6llu ns\n", (unsigned long long)h50,
            (unsigned long long)h99);
    fprintf(stderr, "  cache hit   100000 entries  p50 %6llu ns  p99 %6llu ns\n",
            (unsigned long long)Pct(lat2, iters, .5), (unsigned long long)h99b);
    fprintf(stderr, "  cache miss  4096 (lookup)   p50 %6llu ns  p99 %6llu ns\n",
            (unsigned long long)Pct(miss, iters, .5), (unsigned long long)m99);
    fprintf(stderr, "  decide miss, in-process responder  p50 %6llu ns  p99 %6llu ns\n",
            (unsigned long long)dm[10000], (unsigned long long)d99);
    printf("{\"cache_hit_ns_p50_4096\":%llu,\"cache_hit_ns_p99_4096\":%llu,\"cache_hit_ns_p99_100000\":%llu,"
           "\"cache_miss_ns_p99_4096\":%llu,\"decide_miss_inproc_ns_p99\":%llu,\"clock_overhead_ns_p50\":%llu}\n",
           (unsigned long long)h50, (unsigned long long)h99, (unsigned long long)h99b, (unsigned long long)m99,
           (unsigned long long)d99, (unsigned long long)clk[500]);
    free(lat); free(lat2); free(miss); free(dm);
    return 0;
}
