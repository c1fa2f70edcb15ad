/*
 * fltsim_iocp.c - I/O completion ports for libfltsim (see fltsim_iocp.h): the queue, the waits and
 * the kernel32 exports that work on it alone. CreateIoCompletionPort lives in fltsim.c, because
 * associating a filter port handle is about the port.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "fltsim_iocp.h"

#define IOCP_MAGIC 0x49435031u
#define IOCP_MAX_HANDLES 64
#define WAIT_TIMEOUT_ERR 258u          /* WAIT_TIMEOUT */
#define ERROR_ABANDONED_WAIT_0_ERR 735u /* the port was closed while waiting */
#define ERROR_INVALID_HANDLE_ERR 6u
#define ERROR_INVALID_PARAMETER_ERR 87u
#define ERROR_NOT_ENOUGH_MEMORY_ERR 8u
#define INFINITE_MS 0xFFFFFFFFu

struct FLTSIM_IOCP {
    uint32_t Magic;
    pthread_mutex_t Mu;
    pthread_cond_t Cv;
    FLTSIM_PACKET *Ring;
    uint32_t Cap, Head, Count;
    int Closed;    /* CloseHandle ran: waits end, the handle no longer resolves */
    int Refs;      /* the handle, threads inside a call, associated ports (under gIocpLock) */
    FLTSIM_IOCP_PUMP PumpFn; /* see fltsim_iocp.h; NULL: none */
    void *PumpCtx;
    int Pumping;   /* a waiter is inside PumpFn */
    int Waiters;   /* threads asleep on Cv */
    int WakeFd;    /* eventfd: interrupts the pumping waiter (written under Mu while Pumping) */
    int Woken;     /* WakeFd was written and not yet drained */
};

static pthread_mutex_t gIocpLock = PTHREAD_MUTEX_INITIALIZER;
static FLTSIM_IOCP *gIocps[IOCP_MAX_HANDLES];

FLTSIM_IOCP *FltsimIocpCreate(void)
{
    FLTSIM_IOCP *c = (FLTSIM_IOCP *)calloc(1, sizeof(*c));
    int i;
    if (c == NULL) return NULL;
    c->Magic = IOCP_MAGIC;
    c->Refs = 1;
    c->WakeFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->WakeFd < 0) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->Mu, NULL);
    pthread_cond_init(&c->Cv, NULL);
    pthread_mutex_lock(&gIocpLock);
    for (i = 0; i < IOCP_MAX_HANDLES; i++) {
        if (gIocps[i] == NULL) {
            gIocps[i] = c;
            break;
        }
    }
    pthread_mutex_unlock(&gIocpLock);
    if (i == IOCP_MAX_HANDLES) {
        close(c->WakeFd);
        pthread_cond_destroy(&c->Cv);
        pthread_mutex_destroy(&c->Mu);
        free(c);
        return NULL;
    }
    return c;
}

FLTSIM_IOCP *FltsimIocpAcquire(void *h)
{
    FLTSIM_IOCP *c = NULL;
    int i;
    if (h == NULL) return NULL;
    pthread_mutex_lock(&gIocpLock);
    for (i = 0; i < IOCP_MAX_HANDLES; i++) {
        if (gIocps[i] != NULL && gIocps[i] == h) {
            c = gIocps[i];
            c->Refs++;
            break;
        }
    }
    pthread_mutex_unlock(&gIocpLock);
    return c;
}

void FltsimIocpRelease(FLTSIM_IOCP *c)
{
    int last;
    pthread_mutex_lock(&gIocpLock);
    last = --c->Refs == 0;
    pthread_mutex_unlock(&gIocpLock);
    if (!last) return;
    pthread_cond_destroy(&c->Cv);
    pthread_mutex_destroy(&c->Mu);
    free(c->Ring);
    close(c->WakeFd);
    c->Magic = 0;
    free(c);
}

/* Interrupts the pumping waiter, if any. Locked. */
static void WakePumperLocked(FLTSIM_IOCP *c)
{
    uint64_t one = 1;
    if (c->Pumping && !c->Woken) {
        (void)!write(c->WakeFd, &one, sizeof(one));
        c->Woken = 1;
    }
}

int FltsimIocpSetPump(FLTSIM_IOCP *c, FLTSIM_IOCP_PUMP fn, void *ctx)
{
    int set = 0;
    pthread_mutex_lock(&c->Mu);
    if (c->PumpFn == NULL) {
        c->PumpFn = fn;
        c->PumpCtx = ctx;
        set = 1;
    }
    pthread_mutex_unlock(&c->Mu);
    return set;
}

void FltsimIocpClearPump(FLTSIM_IOCP *c, void *ctx)
{
    pthread_mutex_lock(&c->Mu);
    if (c->PumpCtx == ctx) {
        c->PumpFn = NULL;
        c->PumpCtx = NULL;
    }
    pthread_mutex_unlock(&c->Mu);
}

void FltsimIocpKick(FLTSIM_IOCP *c)
{
    pthread_mutex_lock(&c->Mu);
    if (c->Waiters > 0 && !c->Pumping) pthread_cond_broadcast(&c->Cv);
    pthread_mutex_unlock(&c->Mu);
}

int FltsimIocpPost(FLTSIM_IOCP *c, const FLTSIM_PACKET *p, uint32_t n, int completeOverlapped)
{
    uint32_t i;
    if (n == 0) return 0;
    pthread_mutex_lock(&c->Mu);
    if (c->Count + n > c->Cap) {
        uint32_t cap = c->Cap ? c->Cap : 64u;
        FLTSIM_PACKET *ring;
        while (cap < c->Count + n) cap *= 2u;
        ring = (FLTSIM_PACKET *)malloc(cap * sizeof(*ring));
        if (ring == NULL) {
            pthread_mutex_unlock(&c->Mu);
            return -1;
        }
        for (i = 0; i < c->Count; i++) ring[i] = c->Ring[(c->Head + i) % c->Cap];
        free(c->Ring);
        c->Ring = ring;
        c->Cap = cap;
        c->Head = 0;
    }
    for (i = 0; i < n; i++) {
        if (completeOverlapped && p[i].Overlapped != NULL) {
            p[i].Overlapped->Internal = (uint64_t)(uint32_t)p[i].Status;
            p[i].Overlapped->InternalHigh = p[i].Bytes;
        }
        c->Ring[(c->Head + c->Count + i) % c->Cap] = p[i];
    }
    c->Count += n;
    WakePumperLocked(c);
    pthread_mutex_unlock(&c->Mu);
    pthread_cond_broadcast(&c->Cv);
    return 0;
}

/* Milliseconds left until `deadline` (CLOCK_REALTIME), at least 0. */
static int MsUntil(const struct timespec *deadline)
{
    struct timespec now;
    int64_t ms;
    clock_gettime(CLOCK_REALTIME, &now);
    ms = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms <= 0 ? 0 : ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

FLTSIM_EXPORT int32_t GetQueuedCompletionStatusEx(void *CompletionPort, FLTSIM_OVERLAPPED_ENTRY *lpCompletionPortEntries,
                                                  uint32_t ulCount, uint32_t *ulNumEntriesRemoved,
                                                  uint32_t dwMilliseconds, int32_t fAlertable)
{
    FLTSIM_IOCP *c;
    struct timespec deadline;
    uint32_t n, i;
    int closed;
    (void)fAlertable; /* no APCs in the simulator */
    if (lpCompletionPortEntries == NULL || ulCount == 0 || ulNumEntriesRemoved == NULL) {
        FltsimSetLastError(ERROR_INVALID_PARAMETER_ERR);
        return 0;
    }
    *ulNumEntriesRemoved = 0;
    c = FltsimIocpAcquire(CompletionPort);
    if (c == NULL) {
        FltsimSetLastError(ERROR_INVALID_HANDLE_ERR);
        return 0;
    }
    if (dwMilliseconds != INFINITE_MS) {
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += dwMilliseconds / 1000u;
        deadline.tv_nsec += (long)(dwMilliseconds % 1000u) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&c->Mu);
    while (c->Count == 0 && !c->Closed && dwMilliseconds != 0) {
        int rc = 0;
        if (c->PumpFn != NULL && !c->Pumping) {
            /* fetch the associated port's messages in this thread rather than sleep until the pump
             * thread has (one wake-up per message instead of two) */
            FLTSIM_IOCP_PUMP fn = c->PumpFn;
            void *ctx = c->PumpCtx;
            int ms = dwMilliseconds == INFINITE_MS ? -1 : MsUntil(&deadline), ran;
            uint64_t drained;
            if (ms == 0) break;
            c->Pumping = 1;
            pthread_mutex_unlock(&c->Mu);
            ran = fn(ctx, c, c->WakeFd, ms);
            pthread_mutex_lock(&c->Mu);
            c->Pumping = 0;
            if (c->Woken) { /* a wake-up meant for this pumper */
                (void)!read(c->WakeFd, &drained, sizeof(drained));
                c->Woken = 0;
            }
            if (ran == FLTSIM_PUMP_RAN) continue;
        }
        c->Waiters++;
        if (dwMilliseconds == INFINITE_MS) rc = pthread_cond_wait(&c->Cv, &c->Mu);
        else rc = pthread_cond_timedwait(&c->Cv, &c->Mu, &deadline);
        c->Waiters--;
        if (rc == ETIMEDOUT) break;
    }
    n = c->Count < ulCount ? c->Count : ulCount;
    for (i = 0; i < n; i++) {
        const FLTSIM_PACKET *p = &c->Ring[(c->Head + i) % c->Cap];
        lpCompletionPortEntries[i].lpCompletionKey = p->Key;
        lpCompletionPortEntries[i].lpOverlapped = p->Overlapped;
        lpCompletionPortEntries[i].Internal = (uint64_t)(uint32_t)p->Status;
        lpCompletionPortEntries[i].dwNumberOfBytesTransferred = p->Bytes;
        lpCompletionPortEntries[i].Pad = 0;
    }
    if (n) {
        c->Head = (c->Head + n) % c->Cap;
        c->Count -= n;
    }
    closed = c->Closed;
    pthread_mutex_unlock(&c->Mu);
    FltsimIocpRelease(c);
    if (n == 0) {
        FltsimSetLastError(closed ? ERROR_ABANDONED_WAIT_0_ERR : WAIT_TIMEOUT_ERR);
        return 0;
    }
    *ulNumEntriesRemoved = n;
    return 1;
}

FLTSIM_EXPORT int32_t PostQueuedCompletionStatus(void *CompletionPort, uint32_t dwNumberOfBytesTransferred,
                                                 uint64_t dwCompletionKey, FLTSIM_OVERLAPPED *lpOverlapped)
{
    FLTSIM_IOCP *c = FltsimIocpAcquire(CompletionPort);
    FLTSIM_PACKET p;
    int rc;
    if (c == NULL) {
        FltsimSetLastError(ERROR_INVALID_HANDLE_ERR);
        return 0;
    }
    p.Key = dwCompletionKey;
    p.Overlapped = lpOverlapped;
    p.Status = 0;
    p.Bytes = dwNumberOfBytesTransferred;
    rc = FltsimIocpPost(c, &p, 1, 0); /* a posted packet leaves the OVERLAPPED alone */
    FltsimIocpRelease(c);
    if (rc != 0) {
        FltsimSetLastError(ERROR_NOT_ENOUGH_MEMORY_ERR);
        return 0;
    }
    return 1;
}

/* CloseHandle for completion ports: the handle stops resolving, waiters return FALSE
 * (ERROR_ABANDONED_WAIT_0), and the queue is freed when the last reference goes. */
FLTSIM_EXPORT int32_t CloseHandle(void *hObject)
{
    FLTSIM_IOCP *c = NULL;
    int i;
    pthread_mutex_lock(&gIocpLock);
    for (i = 0; i < IOCP_MAX_HANDLES; i++) {
        if (gIocps[i] != NULL && gIocps[i] == hObject) {
            c = gIocps[i];
            gIocps[i] = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&gIocpLock);
    if (c == NULL) {
        FltsimSetLastError(ERROR_INVALID_HANDLE_ERR);
        return 0;
    }
    pthread_mutex_lock(&c->Mu);
    c->Closed = 1;
    WakePumperLocked(c);
    pthread_mutex_unlock(&c->Mu);
    pthread_cond_broadcast(&c->Cv);
    FltsimIocpRelease(c);
    return 1;
}
