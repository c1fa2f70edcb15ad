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
 *   DWORD   GetLastError(void);   (thread-local; set by QueryDosDeviceW)
 *
 * Socket: env AGENTSH_SIM_SOCKET, else /tmp/agentsh-sim-<port name>.sock (see sim_wire.h).
 * Threads: any number of threads may block in FilterGetMessage on one handle; each blocking call
 * uses its own pooled connection. FilterClose unblocks them with ERROR_OPERATION_ABORTED.
 * The library never raises SIGPIPE (MSG_NOSIGNAL) and never exits the host process.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
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
#include "sim_shm.h"
#include "sim_wire.h"

#define FLTSIM_EXPORT __attribute__((visibility("default")))
#define FLTSIM_MAGIC 0x46534d31u
#define FLTSIM_MAX_IDLE 32
#define FLTSIM_MAX_BUSY 1024
#define FLTSIM_MAX_HANDLES 64

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
} FLTSIM_PORT;

static pthread_mutex_t gLock = PTHREAD_MUTEX_INITIALIZER;
static FLTSIM_PORT *gHandles[FLTSIM_MAX_HANDLES];
static __thread uint32_t gLastError;

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

/* Request/response on fd. Response payload goes to Out (capacity OutCap); a larger payload is a
 * protocol error. Returns -1 on I/O failure, else 0 with *Hr, *OutLen, *Arg. */
static int Call(int fd, uint32_t op, uint64_t arg, const void *in, uint32_t inLen, void *out, uint32_t outCap,
                int32_t *hr, uint32_t *outLen, uint64_t *argOut)
{
    SIMW_HEADER h = { op, inLen, arg };
    SIMW_HEADER r;
    if (WriteReq(fd, &h, in, inLen) != 0) return -1;
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

FLTSIM_EXPORT int32_t FilterGetMessage(void *hPort, void *lpMessageBuffer, uint32_t dwMessageBufferSize,
                                       void *lpOverlapped)
{
    FLTSIM_PORT *p;
    int32_t hr;
    uint32_t got = 0;
    if (lpOverlapped != NULL || lpMessageBuffer == NULL || dwMessageBufferSize < 16) return SIM_E_INVALIDARG;
    p = Acquire(hPort);
    if (p == NULL) return SIM_E_HANDLE;
    hr = PortCall(p, SIMW_OP_GET, dwMessageBufferSize, NULL, 0, lpMessageBuffer, dwMessageBufferSize, &got);
    Release(p);
    return hr;
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
    for (i = 0; i < p->IdleCount; i++) close(p->Idle[i]);
    p->IdleCount = 0;
    pthread_mutex_unlock(&gLock);
    close(p->MainFd);
    if (p->Shm) munmap(p->Shm, sizeof(SIM_SHM));
    pthread_cond_destroy(&p->UsersCv);
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
