/*
 * fltsim.c - libfltsim.so: the fltlib.dll ABI on Linux, talking to agentsh-sim over a Unix socket.
 *
 * Exports the same C signatures as fltuser.h (LPCWSTR = UTF-16 uint16_t*, HRESULT = int32_t,
 * DWORD = uint32_t, HANDLE = void*), so the broker's koffi bindings are identical on both platforms:
 *
 *   HRESULT FilterConnectCommunicationPort(LPCWSTR lpPortName, DWORD dwOptions, LPCVOID lpContext,
 *                                          WORD wSizeOfContext, LPSECURITY_ATTRIBUTES, HANDLE *hPort);
 *   HRESULT FilterGetMessage(HANDLE, PFILTER_MESSAGE_HEADER, DWORD, LPOVERLAPPED);   (lpOverlapped NULL)
 *   HRESULT FilterReplyMessage(HANDLE, PFILTER_REPLY_HEADER, DWORD);
 *   HRESULT FilterSendMessage(HANDLE, LPVOID, DWORD, LPVOID, DWORD, LPDWORD);
 *   HRESULT FilterClose(HANDLE);
 *   DWORD   QueryDosDeviceW(LPCWSTR lpDeviceName, LPWSTR lpTargetPath, DWORD ucchMax);
 *   DWORD   GetLastError(void);   (thread-local; set by QueryDosDeviceW and the completion-port calls)
 *   HANDLE  CreateIoCompletionPort(HANDLE, HANDLE, ULONG_PTR, DWORD); (+ the rest in fltsim_iocp.c)
 *
 * Overlapped reads: FilterGetMessage with an OVERLAPPED on a port handle associated with a completion
 * port returns HRESULT_FROM_WIN32(ERROR_IO_PENDING); its completion (status, byte count, the
 * OVERLAPPED) is queued to that completion port when a message arrives for it, or with
 * STATUS_CANCELLED when the handle is closed, STATUS_PORT_DISCONNECTED when the port is lost. The
 * messages for all of a handle's pending reads are fetched in one request (SIMW_OP_GET_MANY), so a
 * burst of messages costs the broker one wake-up, as on Windows. Who fetches: the thread waiting in
 * GetQueuedCompletionStatusEx on the handle's completion port (its pump, see fltsim_iocp.h), so a
 * message wakes that thread directly, as the kernel's completion does; the handle's pump thread
 * fetches when the handle shares a completion port whose pump is another handle's (or when
 * AGENTSH_SIM_THREAD_PUMP=1), finishes a request whose waiter was interrupted (a post, a close, a
 * timeout), and cancels the pending reads at FilterClose.
 *
 * Socket: env AGENTSH_SIM_SOCKET, else /tmp/agentsh-sim-<port name>.sock (see sim_wire.h).
 * Threads: any number of threads may block in FilterGetMessage on one handle; each blocking call
 * (and the pump of overlapped reads) uses its own pooled connection. FilterClose unblocks them with ERROR_OPERATION_ABORTED.
 * The library never raises SIGPIPE (MSG_NOSIGNAL) and never exits the host process.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include "fltsim_iocp.h"
#include "sim_shm.h"
#include "sim_wire.h"

#define FLTSIM_MAGIC 0x46534d31u
#define FLTSIM_MAX_IDLE 32
#define FLTSIM_MAX_BUSY 1024
#define FLTSIM_MAX_HANDLES 64
#define FLTSIM_MAX_PENDING 1024
#define FLTSIM_E_IO_PENDING ((int32_t)0x800703E5) /* HRESULT_FROM_WIN32(ERROR_IO_PENDING) */
#define FLTSIM_STATUS_PENDING 0x00000103
#define FLTSIM_STATUS_CANCELLED ((int32_t)0xC0000120)
#define FLTSIM_STATUS_PORT_DISCONNECTED ((int32_t)0xC0000037)
#define FLTSIM_STATUS_BUFFER_TOO_SMALL ((int32_t)0xC0000023)

typedef struct FLTSIM_READ {
    uint8_t *Buf;
    uint32_t Cap;
    FLTSIM_OVERLAPPED *Overlapped;
} FLTSIM_READ;

typedef struct FLTSIM_PORT {
    uint32_t Magic;
    int MainFd;
    uint64_t Cookie;
    char Path[108];
    int Closed;
    int Users;                      /* threads inside a call on this handle */
    int Idle[FLTSIM_MAX_IDLE];
    int IdleCount;
    int Busy[FLTSIM_MAX_BUSY];
    int BusyCount;
    pthread_cond_t UsersCv;
    SIM_SHM *Shm;                   /* the simulator's shared port state (NULL: socket replies only) */
    /* overlapped reads: the associated completion port, the pending reads and their pump */
    FLTSIM_IOCP *Iocp;
    uint64_t IocpKey;
    pthread_mutex_t IoMu;
    pthread_cond_t IoCv;
    FLTSIM_READ Pending[FLTSIM_MAX_PENDING];
    uint32_t PendingCount;
    int IoStop;                     /* FilterClose: the pump cancels what is pending and ends */
    int32_t IoFailed;               /* the port was lost: new reads fail at once with this */
    int PumpStarted;
    pthread_t Pump;
    int Pumper;                     /* who has a GET_MANY in flight: PUMPER_* */
    int WaiterPumps;                /* the completion port's waiters fetch (see the top) */
    int HandFd;                     /* a waiter's GET_MANY left to the pump thread to finish (-1: none) */
    uint32_t HandCap;               /* the capacity that request was sent with */
    uint8_t *IoBuf;                 /* GET_MANY answers, read by whoever is the Pumper */
} FLTSIM_PORT;

#define PUMPER_NONE 0
#define PUMPER_THREAD 1
#define PUMPER_WAITER 2

static pthread_mutex_t gLock = PTHREAD_MUTEX_INITIALIZER;
static FLTSIM_PORT *gHandles[FLTSIM_MAX_HANDLES];
static __thread uint32_t gLastError;

void FltsimSetLastError(uint32_t e)
{
    gLastError = e;
}

/* ---------------------------------------------------------------------------------------------- */

/* Header and payload in one sendmsg: the simulator's thread wakes once per request. */
static int WriteReq(int fd, const SIMW_HEADER *h, const void *in, uint32_t inLen)
{
    struct iovec iov[2];
    struct msghdr mh;
    ssize_t w;
    size_t total = sizeof(*h) + inLen;
    memset(&mh, 0, sizeof(mh));
    iov[0].iov_base = (void *)h;
    iov[0].iov_len = sizeof(*h);
    iov[1].iov_base = (void *)in;
    iov[1].iov_len = inLen;
    mh.msg_iov = iov;
    mh.msg_iovlen = inLen ? 2 : 1;
    do {
        w = sendmsg(fd, &mh, MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    if (w <= 0) return -1;
    if ((size_t)w >= total) return 0;
    if ((size_t)w < sizeof(*h)) {
        if (WriteAll(fd, (const uint8_t *)h + w, sizeof(*h) - (size_t)w) != 0) return -1;
        w = (ssize_t)sizeof(*h);
    }
    return WriteAll(fd, (const uint8_t *)in + ((size_t)w - sizeof(*h)), total - (size_t)w);
}

/* CONNECT: like Call, and takes the shared region's fd that comes with the response (or -1). */
static int CallConnect(int fd, const void *ctx, uint32_t ctxLen, int32_t *hr, uint64_t *cookie, int *shmFd)
{
    SIMW_HEADER h = { SIMW_OP_CONNECT, ctxLen, 0 };
    SIMW_HEADER r;
    struct iovec iov;
    struct msghdr mh;
    union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } ctl;
    struct cmsghdr *c;
    ssize_t n;
    *shmFd = -1;
    if (WriteReq(fd, &h, ctx, ctxLen) != 0) return -1;
    memset(&mh, 0, sizeof(mh));
    iov.iov_base = &r;
    iov.iov_len = sizeof(r);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    do {
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return -1;
    for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            memcpy(shmFd, CMSG_DATA(c), sizeof(int));
        }
    }
    if ((size_t)n < sizeof(r) && ReadAll(fd, (uint8_t *)&r + n, sizeof(r) - (size_t)n) != 0) return -1;
    if (r.Length != 0) return -1;
    *hr = (int32_t)r.Op;
    *cookie = r.Arg;
    return 0;
}

/* Maps the simulator's shared port state; NULL when absent or not the expected layout. */
static SIM_SHM *MapShm(int fd)
{
    void *m;
    if (fd < 0) return NULL;
    m = mmap(NULL, sizeof(SIM_SHM), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return NULL;
    if (((SIM_SHM *)m)->Magic != SIM_SHM_MAGIC || ((SIM_SHM *)m)->SlotCount != SIM_SHM_SLOTS) {
        munmap(m, sizeof(SIM_SHM));
        return NULL;
    }
    return (SIM_SHM *)m;
}

static int ReadResp(int fd, void *out, uint32_t outCap, int32_t *hr, uint32_t *outLen, uint64_t *argOut);

/* Request/response on fd. Response payload goes to Out (capacity OutCap); a larger payload is a
 * protocol error. Returns -1 on I/O failure, else 0 with *Hr, *OutLen, *Arg. */
static int Call(int fd, uint32_t op, uint64_t arg, const void *in, uint32_t inLen, void *out, uint32_t outCap,
                int32_t *hr, uint32_t *outLen, uint64_t *argOut)
{
    SIMW_HEADER h = { op, inLen, arg };
    if (WriteReq(fd, &h, in, inLen) != 0) return -1;
    return ReadResp(fd, out, outCap, hr, outLen, argOut);
}

/* The response half of Call, for a request already written on fd. */
static int ReadResp(int fd, void *out, uint32_t outCap, int32_t *hr, uint32_t *outLen, uint64_t *argOut)
{
    SIMW_HEADER r;
    if (ReadAll(fd, &r, sizeof(r)) != 0) return -1;
    if (r.Length > outCap || r.Length > SIMW_MAX_PAYLOAD) return -1;
    if (r.Length && ReadAll(fd, out, r.Length) != 0) return -1;
    *hr = (int32_t)r.Op;
    if (outLen) *outLen = r.Length;
    if (argOut) *argOut = r.Arg;
    return 0;
}

static int Dial(const char *path)
{
    struct sockaddr_un a;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void SocketPathFor(const uint16_t *portName, char *out, unsigned cap)
{
    const char *env = getenv("AGENTSH_SIM_SOCKET");
    char name[256];
    unsigned i = 0;
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    if (portName) {
        for (; portName[i] && i < sizeof(name) - 1; i++) {
            name[i] = portName[i] < 0x80 ? (char)portName[i] : '_';
        }
    }
    name[i] = 0;
    SimDefaultSocketPath(name, out, cap);
}

/* Validates a handle and takes a use reference. */
static FLTSIM_PORT *Acquire(void *h)
{
    FLTSIM_PORT *p = NULL;
    int i;
    pthread_mutex_lock(&gLock);
    for (i = 0; i < FLTSIM_MAX_HANDLES; i++) {
        if (gHandles[i] != NULL && gHandles[i] == h) {
            if (!gHandles[i]->Closed) {
                p = gHandles[i];
                p->Users++;
            }
            break;
        }
    }
    pthread_mutex_unlock(&gLock);
    return p;
}

static void Release(FLTSIM_PORT *p)
{
    pthread_mutex_lock(&gLock);
    if (--p->Users == 0) pthread_cond_broadcast(&p->UsersCv);
    pthread_mutex_unlock(&gLock);
}

/* An attached aux connection, registered as busy (so FilterClose can shut it down). */
static int TakeAux(FLTSIM_PORT *p)
{
    int fd = -1;
    int32_t hr;
    pthread_mutex_lock(&gLock);
    if (p->IdleCount > 0) fd = p->Idle[--p->IdleCount];
    pthread_mutex_unlock(&gLock);
    if (fd < 0) {
        fd = Dial(p->Path);
        if (fd < 0) return -1;
        if (Call(fd, SIMW_OP_ATTACH, p->Cookie, NULL, 0, NULL, 0, &hr, NULL, NULL) != 0 || hr != SIM_S_OK) {
            close(fd);
            return -1;
        }
    }
    pthread_mutex_lock(&gLock);
    if (p->Closed || p->BusyCount >= FLTSIM_MAX_BUSY) {
        pthread_mutex_unlock(&gLock);
        close(fd);
        return -1;
    }
    p->Busy[p->BusyCount++] = fd;
    pthread_mutex_unlock(&gLock);
    return fd;
}

static void GiveAux(FLTSIM_PORT *p, int fd, int reusable)
{
    int i;
    pthread_mutex_lock(&gLock);
    for (i = 0; i < p->BusyCount; i++) {
        if (p->Busy[i] == fd) {
            p->Busy[i] = p->Busy[--p->BusyCount];
            break;
        }
    }
    if (reusable && !p->Closed && p->IdleCount < FLTSIM_MAX_IDLE) {
        p->Idle[p->IdleCount++] = fd;
        fd = -1;
    }
    pthread_mutex_unlock(&gLock);
    if (fd >= 0) close(fd);
}

/* HRESULT after an I/O failure: aborted if FilterClose ran, else the port is gone. */
static int32_t LostHr(FLTSIM_PORT *p)
{
    int closed;
    pthread_mutex_lock(&gLock);
    closed = p->Closed;
    pthread_mutex_unlock(&gLock);
    return closed ? SIM_E_OPERATION_ABORTED : SIM_E_HANDLE;
}

/* ---------------------------------------------------------------------------------------------- */

FLTSIM_EXPORT int32_t FilterConnectCommunicationPort(const uint16_t *lpPortName, uint32_t dwOptions,
                                                     const void *lpContext, uint16_t wSizeOfContext,
                                                     void *lpSecurityAttributes, void **hPort)
{
    FLTSIM_PORT *p;
    int32_t hr;
    uint64_t cookie = 0;
    int i, slot = -1, shmFd = -1;
    (void)dwOptions;
    (void)lpSecurityAttributes;
    if (hPort == NULL || lpPortName == NULL || (wSizeOfContext != 0 && lpContext == NULL)) return SIM_E_INVALIDARG;
    *hPort = NULL;
    p = (FLTSIM_PORT *)calloc(1, sizeof(*p));
    if (p == NULL) return SIM_E_OUTOFMEMORY;
    p->Magic = FLTSIM_MAGIC;
    pthread_cond_init(&p->UsersCv, NULL);
    pthread_mutex_init(&p->IoMu, NULL);
    pthread_cond_init(&p->IoCv, NULL);
    p->HandFd = -1;
    SocketPathFor(lpPortName, p->Path, sizeof(p->Path));
    p->MainFd = Dial(p->Path);
    if (p->MainFd < 0) {
        free(p);
        return SIM_E_FILE_NOT_FOUND; /* no such port (simulator not running) */
    }
    if (CallConnect(p->MainFd, lpContext, wSizeOfContext, &hr, &cookie, &shmFd) != 0) hr = SIM_E_HANDLE;
    if (hr != SIM_S_OK) {
        if (shmFd >= 0) close(shmFd);
        close(p->MainFd);
        free(p);
        return hr;
    }
    p->Cookie = cookie;
    p->Shm = MapShm(shmFd);
    pthread_mutex_lock(&gLock);
    for (i = 0; i < FLTSIM_MAX_HANDLES; i++) {
        if (gHandles[i] == NULL) {
            gHandles[i] = p;
            slot = i;
            break;
        }
    }
    pthread_mutex_unlock(&gLock);
    if (slot < 0) {
        if (p->Shm) munmap(p->Shm, sizeof(SIM_SHM));
        close(p->MainFd);
        free(p);
        return SIM_E_NO_SYSTEM_RESOURCES;
    }
    *hPort = p;
    return SIM_S_OK;
}

/* One request on a pooled connection of an acquired port: the round trip every fltlib call but
 * connect and close makes. *Got (when given) is set only on success. */
static int32_t PortCall(FLTSIM_PORT *p, uint32_t op, uint64_t arg, const void *in, uint32_t inLen, void *out,
                        uint32_t outCap, uint32_t *Got)
{
    int32_t hr;
    uint32_t got = 0;
    int fd = TakeAux(p);
    if (fd < 0) return LostHr(p);
    if (Call(fd, op, arg, in, inLen, out, outCap, &hr, &got, NULL) != 0) {
        GiveAux(p, fd, 0);
        return LostHr(p);
    }
    GiveAux(p, fd, 1);
    if (Got != NULL) *Got = got;
    return hr;
}

/* Completes every pending read with `status` (the handle closed or the port lost). */
static void FailPending(FLTSIM_PORT *p, int32_t status)
{
    FLTSIM_PACKET pk[SIMW_GET_MANY_MAX];
    uint32_t n;
    for (;;) {
        pthread_mutex_lock(&p->IoMu);
        n = p->PendingCount < SIMW_GET_MANY_MAX ? p->PendingCount : SIMW_GET_MANY_MAX;
        for (uint32_t i = 0; i < n; i++) {
            FLTSIM_READ *r = &p->Pending[p->PendingCount - n + i];
            pk[i] = (FLTSIM_PACKET){ p->IocpKey, r->Overlapped, status, 0 };
        }
        p->PendingCount -= n;
        pthread_mutex_unlock(&p->IoMu);
        if (n == 0) return;
        (void)FltsimIocpPost(p->Iocp, pk, n, 1);
    }
}

/* Hands the messages of one GET_MANY response to the oldest pending reads and queues their
 * completions. Returns 0, or -1 when the response is malformed (the port is then treated as lost). */
static int DeliverMany(FLTSIM_PORT *p, const uint8_t *in, uint32_t got, uint64_t count)
{
    FLTSIM_PACKET pk[SIMW_GET_MANY_MAX];
    uint32_t n = 0, off = 0, len;
    int bad = 0;
    pthread_mutex_lock(&p->IoMu);
    while (n < count && n < p->PendingCount && n < SIMW_GET_MANY_MAX) {
        FLTSIM_READ *r = &p->Pending[n];
        if (got - off < 4) {
            bad = 1;
            break;
        }
        memcpy(&len, in + off, 4);
        off += 4;
        if (len < 16 || len > got - off || len > r->Cap) {
            bad = 1;
            break;
        }
        memcpy(r->Buf, in + off, len);
        off += len;
        pk[n] = (FLTSIM_PACKET){ p->IocpKey, r->Overlapped, 0, len };
        n++;
    }
    if (n < count) bad = 1;
    memmove(p->Pending, p->Pending + n, (p->PendingCount - n) * sizeof(p->Pending[0]));
    p->PendingCount -= n;
    pthread_mutex_unlock(&p->IoMu);
    (void)FltsimIocpPost(p->Iocp, pk, n, 1);
    return bad ? -1 : 0;
}

/* What a GET_MANY answer means for the pending reads (the request asked for the oldest of them, the
 * smallest of whose buffers is `cap`). Returns 0, or -1 when the port is to be treated as lost. */
static int TakeMany(FLTSIM_PORT *p, int32_t hr, const uint8_t *in, uint32_t got, uint64_t count, uint32_t cap)
{
    FLTSIM_PACKET pk;
    uint32_t i;
    if (hr == SIM_S_OK) return DeliverMany(p, in, got, count);
    if (hr != SIM_E_INSUFFICIENT_BUFFER) return -1;
    /* the next message does not fit the smallest pending buffer: that read fails (as the blocking
     * call does); the message stays queued for a larger one */
    pthread_mutex_lock(&p->IoMu);
    if (p->PendingCount == 0) {
        pthread_mutex_unlock(&p->IoMu);
        return 0;
    }
    for (i = 0; i < p->PendingCount && p->Pending[i].Cap != cap; i++) {
    }
    if (i == p->PendingCount) i = 0;
    pk = (FLTSIM_PACKET){ p->IocpKey, p->Pending[i].Overlapped, FLTSIM_STATUS_BUFFER_TOO_SMALL, (uint32_t)count };
    memmove(p->Pending + i, p->Pending + i + 1, (p->PendingCount - i - 1) * sizeof(p->Pending[0]));
    p->PendingCount--;
    pthread_mutex_unlock(&p->IoMu);
    (void)FltsimIocpPost(p->Iocp, &pk, 1, 1);
    return 0;
}

/* The fetcher's way out when its request failed or the handle is closing: gives up the Pumper role;
 * unless FilterClose is closing the handle (then returns 1: the reads are to be cancelled), the port
 * is lost for this handle (the simulator dropped the client, a broken response): pending reads fail
 * with STATUS_PORT_DISCONNECTED and later ones at once. */
static int FetchFailed(FLTSIM_PORT *p)
{
    int closed = LostHr(p) == SIM_E_OPERATION_ABORTED;
    pthread_mutex_lock(&p->IoMu);
    p->Pumper = PUMPER_NONE;
    if (!closed && p->IoFailed == 0) p->IoFailed = SIM_E_HANDLE;
    pthread_mutex_unlock(&p->IoMu);
    if (!closed) FailPending(p, FLTSIM_STATUS_PORT_DISCONNECTED);
    return closed;
}

/* The oldest pending reads a GET_MANY asks for: their count and smallest buffer. Under IoMu. */
static void ReadsToAsk(const FLTSIM_PORT *p, uint32_t *k, uint32_t *cap)
{
    uint32_t i;
    *k = p->PendingCount < SIMW_GET_MANY_MAX ? p->PendingCount : SIMW_GET_MANY_MAX;
    *cap = p->Pending[0].Cap;
    for (i = 1; i < *k; i++) if (p->Pending[i].Cap < *cap) *cap = p->Pending[i].Cap;
}

/* The pump thread of a handle's overlapped reads: fetches for all of them in one GET_MANY while
 * reads are pending and the completion port's waiters do not fetch themselves; finishes a request a
 * waiter left; ends at FilterClose (pending reads: STATUS_CANCELLED) or when the port is lost
 * (STATUS_PORT_DISCONNECTED, and later reads fail at once). */
static void *Pump(void *arg)
{
    FLTSIM_PORT *p = (FLTSIM_PORT *)arg;
    uint8_t *in = p->IoBuf; /* ours while Pumper is PUMPER_THREAD */
    int32_t hr;
    int kick;
    for (;;) {
        uint32_t k = 0, cap, got = 0;
        uint64_t count = 0;
        int fd;
        pthread_mutex_lock(&p->IoMu);
        while (!p->IoStop && (p->Pumper != PUMPER_NONE || (p->HandFd < 0 && (p->WaiterPumps || p->PendingCount == 0))))
            pthread_cond_wait(&p->IoCv, &p->IoMu);
        if (p->IoStop) {
            pthread_mutex_unlock(&p->IoMu);
            break;
        }
        p->Pumper = PUMPER_THREAD;
        fd = p->HandFd;
        p->HandFd = -1;
        if (fd >= 0) cap = p->HandCap;
        else ReadsToAsk(p, &k, &cap);
        pthread_mutex_unlock(&p->IoMu);
        if (fd >= 0) {
            if (ReadResp(fd, in, SIMW_MAX_PAYLOAD, &hr, &got, &count) != 0) {
                GiveAux(p, fd, 0);
                break;
            }
        } else {
            fd = TakeAux(p);
            if (fd < 0) break;
            if (Call(fd, SIMW_OP_GET_MANY, ((uint64_t)k << 32) | cap, NULL, 0, in, SIMW_MAX_PAYLOAD, &hr, &got, &count) != 0) {
                GiveAux(p, fd, 0);
                break;
            }
        }
        GiveAux(p, fd, 1);
        if (TakeMany(p, hr, in, got, count, cap) != 0) break;
        pthread_mutex_lock(&p->IoMu);
        p->Pumper = PUMPER_NONE;
        kick = p->WaiterPumps;
        pthread_mutex_unlock(&p->IoMu);
        if (kick) FltsimIocpKick(p->Iocp); /* a waiter that found the role taken fetches next */
    }
    if (FetchFailed(p)) FailPending(p, FLTSIM_STATUS_CANCELLED);
    pthread_mutex_lock(&p->IoMu);
    kick = p->WaiterPumps;
    pthread_mutex_unlock(&p->IoMu);
    if (kick) FltsimIocpKick(p->Iocp);
    return NULL;
}

/* The completion port's pump (fltsim_iocp.h) for handle `ctx`: one GET_MANY for its pending reads,
 * answered in this (the waiting) thread. Interrupted before the answer, it leaves the request to the
 * pump thread. */
static int WaiterPump(void *ctx, FLTSIM_IOCP *c, int wakeFd, int timeoutMs)
{
    FLTSIM_PORT *p = Acquire(ctx);
    struct pollfd pf[2];
    uint32_t k, cap, got = 0;
    uint64_t count = 0;
    int32_t hr = SIM_E_HANDLE;
    uint8_t *in;
    int fd, rc;
    if (p == NULL) return FLTSIM_PUMP_IDLE;
    pthread_mutex_lock(&p->IoMu);
    if (p->Iocp != c || !p->WaiterPumps || p->IoStop || p->IoFailed != 0 ||
        p->Pumper != PUMPER_NONE || p->HandFd >= 0 || p->PendingCount == 0) {
        pthread_mutex_unlock(&p->IoMu);
        Release(p);
        return FLTSIM_PUMP_IDLE;
    }
    p->Pumper = PUMPER_WAITER;
    ReadsToAsk(p, &k, &cap);
    in = p->IoBuf; /* ours while Pumper is PUMPER_WAITER */
    pthread_mutex_unlock(&p->IoMu);
    fd = TakeAux(p);
    if (fd >= 0) {
        SIMW_HEADER h = { SIMW_OP_GET_MANY, 0, ((uint64_t)k << 32) | cap };
        if (WriteReq(fd, &h, NULL, 0) != 0) {
            GiveAux(p, fd, 0);
            fd = -1;
        }
    }
    if (fd < 0) goto lost;
    pf[0] = (struct pollfd){ fd, POLLIN, 0 };
    pf[1] = (struct pollfd){ wakeFd, POLLIN, 0 };
    do {
        rc = poll(pf, 2, timeoutMs);
    } while (rc < 0 && errno == EINTR);
    if (rc >= 0 && pf[0].revents == 0) {
        /* a post, a close or the timeout came first: the pump thread reads the answer */
        pthread_mutex_lock(&p->IoMu);
        p->HandFd = fd;
        p->HandCap = cap;
        p->Pumper = PUMPER_NONE;
        pthread_cond_broadcast(&p->IoCv);
        pthread_mutex_unlock(&p->IoMu);
        Release(p);
        return FLTSIM_PUMP_RAN;
    }
    if (rc < 0 || ReadResp(fd, in, SIMW_MAX_PAYLOAD, &hr, &got, &count) != 0) {
        GiveAux(p, fd, 0);
        goto lost;
    }
    GiveAux(p, fd, 1);
    if (TakeMany(p, hr, in, got, count, cap) != 0) goto lost;
    pthread_mutex_lock(&p->IoMu);
    p->Pumper = PUMPER_NONE;
    pthread_mutex_unlock(&p->IoMu);
    Release(p);
    return FLTSIM_PUMP_RAN;
lost:
    (void)FetchFailed(p); /* closing: FilterClose cancels the reads once this call is out */
    Release(p);
    return FLTSIM_PUMP_RAN;
}

/* The handle's pump thread and the buffer every fetch of the handle reads into. Under IoMu. */
static int32_t StartPump(FLTSIM_PORT *p)
{
    if (p->IoBuf == NULL) p->IoBuf = (uint8_t *)malloc(SIMW_MAX_PAYLOAD);
    if (p->IoBuf == NULL) return SIM_E_OUTOFMEMORY;
    if (pthread_create(&p->Pump, NULL, Pump, p) != 0) return SIM_E_NO_SYSTEM_RESOURCES;
    p->PumpStarted = 1;
    return SIM_S_OK;
}

/* FilterGetMessage with an OVERLAPPED: queues the read for the pump (starting it on first use). */
static int32_t GetOverlapped(FLTSIM_PORT *p, uint8_t *buf, uint32_t cap, FLTSIM_OVERLAPPED *ov)
{
    int32_t hr = FLTSIM_E_IO_PENDING;
    int kick = 0;
    if (p->Iocp == NULL) return SIM_E_INVALIDARG; /* only completion-port delivery is emulated */
    pthread_mutex_lock(&p->IoMu);
    if (p->IoFailed != 0) {
        hr = p->IoFailed;
    } else if (p->PendingCount == FLTSIM_MAX_PENDING) {
        hr = SIM_E_NO_SYSTEM_RESOURCES;
    } else if (p->PumpStarted || (hr = StartPump(p)) == SIM_S_OK) {
        hr = FLTSIM_E_IO_PENDING;
        ov->Internal = FLTSIM_STATUS_PENDING;
        ov->InternalHigh = 0;
        p->Pending[p->PendingCount++] = (FLTSIM_READ){ buf, cap, ov };
        /* waiters fetch: one may be asleep only for want of a read, so only the first one wakes it */
        if (p->WaiterPumps) kick = p->PendingCount == 1;
        else pthread_cond_signal(&p->IoCv);
    }
    pthread_mutex_unlock(&p->IoMu);
    if (kick) FltsimIocpKick(p->Iocp);
    return hr;
}

FLTSIM_EXPORT int32_t FilterGetMessage(void *hPort, void *lpMessageBuffer, uint32_t dwMessageBufferSize,
                                       void *lpOverlapped)
{
    FLTSIM_PORT *p;
    int32_t hr;
    uint32_t got = 0;
    if (lpMessageBuffer == NULL || dwMessageBufferSize < 16) return SIM_E_INVALIDARG;
    p = Acquire(hPort);
    if (p == NULL) return SIM_E_HANDLE;
    if (lpOverlapped != NULL) {
        hr = GetOverlapped(p, (uint8_t *)lpMessageBuffer, dwMessageBufferSize, (FLTSIM_OVERLAPPED *)lpOverlapped);
    } else {
        hr = PortCall(p, SIMW_OP_GET, dwMessageBufferSize, NULL, 0, lpMessageBuffer, dwMessageBufferSize, &got);
    }
    Release(p);
    return hr;
}

/* CreateIoCompletionPort: with INVALID_HANDLE_VALUE a new completion port; with a port handle, the
 * association of that handle (key = CompletionKey) with ExistingCompletionPort or a new one. A
 * handle is associated once. NULL on failure (GetLastError). */
FLTSIM_EXPORT void *CreateIoCompletionPort(void *FileHandle, void *ExistingCompletionPort, uint64_t CompletionKey,
                                           uint32_t NumberOfConcurrentThreads)
{
    FLTSIM_PORT *p;
    FLTSIM_IOCP *c;
    (void)NumberOfConcurrentThreads;
    if (FileHandle == (void *)(intptr_t)-1) {
        if (ExistingCompletionPort != NULL) {
            gLastError = 87; /* ERROR_INVALID_PARAMETER */
            return NULL;
        }
        c = FltsimIocpCreate();
        if (c == NULL) gLastError = 8; /* ERROR_NOT_ENOUGH_MEMORY */
        return c;
    }
    p = Acquire(FileHandle);
    if (p == NULL) {
        gLastError = 6; /* ERROR_INVALID_HANDLE */
        return NULL;
    }
    if (ExistingCompletionPort != NULL) {
        c = FltsimIocpAcquire(ExistingCompletionPort);
        if (c == NULL) gLastError = 6;
    } else {
        c = FltsimIocpCreate();
        if (c != NULL) c = FltsimIocpAcquire(c); /* the handle's reference and the association's */
        if (c == NULL) gLastError = 8;
    }
    if (c != NULL) {
        int associated = 0;
        const char *threadPump = getenv("AGENTSH_SIM_THREAD_PUMP");
        pthread_mutex_lock(&p->IoMu);
        if (p->Iocp == NULL) {
            p->Iocp = c;
            p->IocpKey = CompletionKey;
            associated = 1;
        } else {
            gLastError = 87;
            FltsimIocpRelease(c);
            c = NULL;
        }
        pthread_mutex_unlock(&p->IoMu);
        /* the first handle on a completion port is fetched for by its waiters (see the top) */
        if (associated && !(threadPump != NULL && strcmp(threadPump, "1") == 0) &&
            FltsimIocpSetPump(c, WaiterPump, p)) {
            pthread_mutex_lock(&p->IoMu);
            p->WaiterPumps = 1;
            pthread_mutex_unlock(&p->IoMu);
        }
    }
    Release(p);
    return c;
}

/* FilterReplyMessage in the caller's thread, through the shared slots: finds the waiting sender by
 * the message id, hands it the reply and wakes it, like the kernel does. SIM_E_NOT_SUPPORTED: this
 * message takes the socket path (a reply buffer larger than a slot's). */
static int32_t ReplyShm(FLTSIM_PORT *p, const uint8_t *buf, uint32_t len)
{
    SIM_SHM *shm = p->Shm;
    SIM_SHM_SLOT *s;
    uint64_t id;
    uint32_t data = len - 16, n;
    memcpy(&id, buf + 8, sizeof(id)); /* FILTER_REPLY_HEADER: Status (4), pad (4), MessageId (8) */
    s = &shm->Slots[id & (SIM_SHM_SLOTS - 1)];
    SimShmLock(&shm->Mu);
    if (shm->Cookie != p->Cookie) {
        pthread_mutex_unlock(&shm->Mu);
        return SIM_E_HANDLE; /* the simulator dropped this client */
    }
    if (s->MessageId != id || s->State != SIM_SLOT_DELIVERED) {
        shm->LateReplies++;
        pthread_mutex_unlock(&shm->Mu);
        return SIM_E_FLT_NO_WAITER_FOR_REPLY;
    }
    if (s->ReplyCap > SIM_SHM_REPLY_MAX) {
        pthread_mutex_unlock(&shm->Mu);
        return SIM_E_NOT_SUPPORTED;
    }
    n = data > s->ReplyCap ? s->ReplyCap : data;
    memcpy(s->Reply, buf + 16, n);
    s->ReplyLen = n;
    s->Status = data > s->ReplyCap ? (int32_t)0x80000005 /* STATUS_BUFFER_OVERFLOW */ : 0;
    s->Direct = 0;
    s->State = SIM_SLOT_DONE;
    shm->Replies++;
    pthread_mutex_unlock(&shm->Mu);
    /* after unlocking: the woken sender does not block again on the lock we hold (one wake-up, not
     * two). A signal that arrives after the slot was reused is a spurious wake-up: waiters re-check. */
    pthread_cond_signal(&s->Cv);
    return SIM_S_OK;
}

FLTSIM_EXPORT int32_t FilterReplyMessage(void *hPort, void *lpReplyBuffer, uint32_t dwReplyBufferSize)
{
    FLTSIM_PORT *p;
    int32_t hr;
    if (lpReplyBuffer == NULL || dwReplyBufferSize < 16 || dwReplyBufferSize > SIMW_MAX_PAYLOAD) return SIM_E_INVALIDARG;
    p = Acquire(hPort);
    if (p == NULL) return SIM_E_HANDLE;
    if (p->Shm != NULL && dwReplyBufferSize - 16 <= SIM_SHM_REPLY_MAX) {
        hr = ReplyShm(p, (const uint8_t *)lpReplyBuffer, dwReplyBufferSize);
        if (hr != SIM_E_NOT_SUPPORTED) {
            Release(p);
            return hr;
        }
    }
    hr = PortCall(p, SIMW_OP_REPLY, 0, lpReplyBuffer, dwReplyBufferSize, NULL, 0, NULL);
    Release(p);
    return hr;
}

FLTSIM_EXPORT int32_t FilterSendMessage(void *hPort, void *lpInBuffer, uint32_t dwInBufferSize, void *lpOutBuffer,
                                        uint32_t dwOutBufferSize, uint32_t *lpBytesReturned)
{
    FLTSIM_PORT *p;
    int32_t hr;
    uint32_t got = 0;
    if (lpBytesReturned == NULL || (dwInBufferSize && lpInBuffer == NULL) || (dwOutBufferSize && lpOutBuffer == NULL) ||
        dwInBufferSize > SIMW_MAX_PAYLOAD) {
        return SIM_E_INVALIDARG;
    }
    *lpBytesReturned = 0;
    p = Acquire(hPort);
    if (p == NULL) return SIM_E_HANDLE;
    hr = PortCall(p, SIMW_OP_SEND, dwOutBufferSize, lpInBuffer, dwInBufferSize, lpOutBuffer, dwOutBufferSize, &got);
    *lpBytesReturned = got;
    Release(p);
    return hr;
}

FLTSIM_EXPORT int32_t FilterClose(void *hPort)
{
    FLTSIM_PORT *p = NULL;
    int i;
    pthread_mutex_lock(&gLock);
    for (i = 0; i < FLTSIM_MAX_HANDLES; i++) {
        if (gHandles[i] != NULL && gHandles[i] == hPort) {
            p = gHandles[i];
            gHandles[i] = NULL;
            break;
        }
    }
    if (p == NULL) {
        pthread_mutex_unlock(&gLock);
        return SIM_E_HANDLE;
    }
    p->Closed = 1;
    /* unblock every thread inside a call: their recv() returns and they report OPERATION_ABORTED */
    for (i = 0; i < p->BusyCount; i++) shutdown(p->Busy[i], SHUT_RDWR);
    shutdown(p->MainFd, SHUT_RDWR); /* the simulator sees the client go: port disconnected */
    while (p->Users > 0) pthread_cond_wait(&p->UsersCv, &gLock);
    pthread_mutex_unlock(&gLock);
    /* no waiter fetches for this handle any more (one inside WaiterPump held a use until now) */
    if (p->Iocp != NULL) FltsimIocpClearPump(p->Iocp, p);
    /* the pump cancels the pending overlapped reads (their completions are queued) and ends */
    pthread_mutex_lock(&p->IoMu);
    p->IoStop = 1;
    pthread_cond_broadcast(&p->IoCv);
    pthread_mutex_unlock(&p->IoMu);
    if (p->PumpStarted) pthread_join(p->Pump, NULL);
    if (p->Iocp != NULL) FltsimIocpRelease(p->Iocp);
    free(p->IoBuf);
    pthread_mutex_lock(&gLock);
    for (i = 0; i < p->IdleCount; i++) close(p->Idle[i]);
    p->IdleCount = 0;
    pthread_mutex_unlock(&gLock);
    close(p->MainFd);
    if (p->Shm) munmap(p->Shm, sizeof(SIM_SHM));
    pthread_cond_destroy(&p->UsersCv);
    pthread_cond_destroy(&p->IoCv);
    pthread_mutex_destroy(&p->IoMu);
    p->Magic = 0;
    free(p);
    return SIM_S_OK;
}

FLTSIM_EXPORT uint32_t GetLastError(void)
{
    return gLastError;
}

/* Built-in table, used when the simulator cannot be asked (same defaults as agentsh-sim). */
static const char *const kDefaultVolumes = "C:=\\Device\\HarddiskVolume3\nD:=\\Device\\HarddiskVolume4\n";

FLTSIM_EXPORT uint32_t QueryDosDeviceW(const uint16_t *lpDeviceName, uint16_t *lpTargetPath, uint32_t ucchMax)
{
    char table[4096];
    char path[108];
    uint32_t got = 0, n = 0;
    int32_t hr;
    int fd;
    const char *line;
    char want[8] = { 0 };

    if (lpTargetPath == NULL || ucchMax == 0) {
        gLastError = 87; /* ERROR_INVALID_PARAMETER */
        return 0;
    }
    SocketPathFor((const uint16_t *)u"\\AgentshPort", path, sizeof(path));
    snprintf(table, sizeof(table), "%s", kDefaultVolumes);
    fd = Dial(path);
    if (fd >= 0) {
        if (Call(fd, SIMW_OP_VOLUMES, 0, NULL, 0, table, sizeof(table) - 1, &hr, &got, NULL) == 0 && hr == SIM_S_OK) {
            table[got] = 0;
        } else {
            snprintf(table, sizeof(table), "%s", kDefaultVolumes);
        }
        close(fd);
    }
    if (lpDeviceName != NULL) {
        /* "C:" (case-insensitive); anything else is not a DOS device of the simulator */
        if (lpDeviceName[0] == 0 || lpDeviceName[1] != ':' || lpDeviceName[2] != 0 || lpDeviceName[0] > 0x7F) {
            gLastError = 2; /* ERROR_FILE_NOT_FOUND */
            return 0;
        }
        want[0] = (char)(lpDeviceName[0] & ~0x20);
        want[1] = ':';
    }
    for (line = table; *line; ) {
        const char *eq = strchr(line, '=');
        const char *end = strchr(line, '\n');
        if (end == NULL) end = line + strlen(line);
        if (eq != NULL && eq < end) {
            if (lpDeviceName == NULL) {
                /* list every device name: "C:\0D:\0\0" */
                uint32_t len = (uint32_t)(eq - line), k;
                if (n + len + 2 > ucchMax) {
                    gLastError = 122; /* ERROR_INSUFFICIENT_BUFFER */
                    return 0;
                }
                for (k = 0; k < len; k++) lpTargetPath[n++] = (uint16_t)(unsigned char)line[k];
                lpTargetPath[n++] = 0;
            } else if ((size_t)(eq - line) == 2 && (line[0] & ~0x20) == want[0] && line[1] == ':') {
                uint32_t len = (uint32_t)(end - eq - 1), k;
                if (len + 2 > ucchMax) {
                    gLastError = 122;
                    return 0;
                }
                for (k = 0; k < len; k++) lpTargetPath[k] = (uint16_t)(unsigned char)eq[1 + k];
                lpTargetPath[len] = 0;
                lpTargetPath[len + 1] = 0;
                gLastError = 0;
                return len + 2;
            }
        }
        line = *end ? end + 1 : end;
    }
    if (lpDeviceName == NULL) {
        if (n + 1 > ucchMax) {
            gLastError = 122;
            return 0;
        }
        lpTargetPath[n++] = 0;
        gLastError = 0;
        return n;
    }
    gLastError = 2;
    return 0;
}
