/*
 * sim_port.c - emulation of the minifilter communication port (FltCreateCommunicationPort with
 * MaxConnections = 1) for libfltsim clients, with FltSendMessage semantics:
 *
 *   - a message is delivered only to a pending FilterGetMessage; if none is pending it waits in the
 *     port queue for the next one; the sender's timeout covers queueing and the reply wait;
 *   - no reply within the timeout -> STATUS_TIMEOUT (the message is withdrawn: a reply arriving later
 *     gets ERROR_FLT_NO_WAITER_FOR_REPLY from FilterReplyMessage);
 *   - the client goes away (main connection EOF or FilterClose) -> every queued or waiting send fails
 *     with STATUS_PORT_DISCONNECTED and blocked FilterGetMessage calls are aborted;
 *   - a reply longer than the sender's reply buffer -> the sender gets STATUS_BUFFER_OVERFLOW;
 *   - notifications (no reply buffer) complete when delivered;
 *   - a connection context is checked by the core (magic, version); a second client is refused
 *     (STATUS_CONNECTION_COUNT_LIMIT);
 *   - FilterSendMessage input goes through AgentshCoreDispatch, exactly like MessageNotify.
 *
 * Threads: one accept thread, one thread per client connection (main or aux). Message state lives
 * in a region shared with the client (sim_shm.h), so the client's FilterReplyMessage completes the
 * sender directly, like the kernel call; SIMW_OP_REPLY remains for replies that do not fit a slot.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "sim_port.h"
#include "sim_wire.h"

struct SIM_MSG {
    SIM_MSG *Next;        /* port queue */
    uint64_t Id;
    uint32_t Slot;        /* its slot in the shared region (state, reply, the sender's condition) */
    const uint8_t *Data;
    uint32_t Size;
    uint8_t *Reply;       /* NULL: notification */
    uint32_t ReplyCap;
    uint32_t ReplyLen;    /* socket replies: written to Reply directly */
};

/* A GET_MANY that found the queue empty: its connection thread waits, and the next sender answers it
 * in its own thread (as FltSendMessage completes a pending FilterGetMessage in the sender's context),
 * so a message reaches the client without a hop through a simulator thread. */
struct SIM_PARKED {
    SIM_PARKED *Next;
    int Fd;
    uint32_t Count, Capacity;
    uint8_t *Buf;                 /* the connection thread's response buffer */
    uint32_t State;               /* PARK_* */
    pthread_cond_t Cv;            /* the connection thread waits here (with the port lock) */
};

#define PARK_WAITING 0u
#define PARK_CLAIMED 1u           /* a sender is writing the answer */
#define PARK_DONE 2u              /* answered */
#define PARK_FAILED 3u            /* the answer could not be written (the messages were requeued) */

static void Lock(SIM_PORT *P) { SimShmLock(P->Mu); }
static void Unlock(SIM_PORT *P) { pthread_mutex_unlock(P->Mu); }

/* Header and payload in one sendmsg (one wake-up of the reader, not two); with passFd >= 0 the fd
 * travels with the header (SCM_RIGHTS). */
static int RespondEx(int fd, int32_t hr, uint64_t arg, const void *payload, uint32_t len, int passFd)
{
    SIMW_HEADER h = { (uint32_t)hr, len, arg };
    struct iovec iov[2];
    struct msghdr mh;
    union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } ctl;
    ssize_t w;
    size_t sent, total = sizeof(h) + len;
    memset(&mh, 0, sizeof(mh));
    iov[0].iov_base = &h;
    iov[0].iov_len = sizeof(h);
    iov[1].iov_base = (void *)payload;
    iov[1].iov_len = len;
    mh.msg_iov = iov;
    mh.msg_iovlen = len ? 2 : 1;
    if (passFd >= 0) {
        struct cmsghdr *c;
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &passFd, sizeof(int));
    }
    do {
        w = sendmsg(fd, &mh, MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    if (w <= 0) return -1;
    sent = (size_t)w;
    if (sent >= total) return 0;
    /* a short write (a full socket buffer): the rest as plain bytes */
    if (sent < sizeof(h)) {
        if (WriteAll(fd, (const uint8_t *)&h + sent, sizeof(h) - sent) != 0) return -1;
        sent = sizeof(h);
    }
    return WriteAll(fd, (const uint8_t *)payload + (sent - sizeof(h)), total - sent);
}

static int Respond(int fd, int32_t hr, uint64_t arg, const void *payload, uint32_t len)
{
    return RespondEx(fd, hr, arg, payload, len, -1);
}

static void QueueRemove(SIM_PORT *P, SIM_MSG *m)
{
    SIM_MSG *prev = NULL, *x;
    for (x = P->QHead; x; prev = x, x = x->Next) {
        if (x == m) {
            if (prev) prev->Next = m->Next; else P->QHead = m->Next;
            if (P->QTail == m) P->QTail = prev;
            m->Next = NULL;
            return;
        }
    }
}

/* The message a reply or a requeue names, if it is still delivered and waiting. Locked. */
static SIM_MSG *DeliveredById(SIM_PORT *P, uint64_t id)
{
    uint32_t slot = (uint32_t)(id & (SIM_SHM_SLOTS - 1));
    SIM_SHM_SLOT *s = &P->Shm->Slots[slot];
    if (P->Msgs[slot] == NULL || s->MessageId != id || s->State != SIM_SLOT_DELIVERED) return NULL;
    return P->Msgs[slot];
}

static void Deadline(struct timespec *ts, uint32_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000u;
    ts->tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int AnswerParkedLocked(SIM_PORT *P);
static void WakeParkedLocked(SIM_PORT *P);

NTSTATUS SimPortSend(void *Context, const void *Message, UINT32 MessageSize, void *Reply, UINT32 *ReplyLength,
                     UINT32 TimeoutMs)
{
    SIM_PORT *P = (SIM_PORT *)Context;
    SIM_MSG m;
    SIM_SHM_SLOT *s;
    struct timespec deadline;
    NTSTATUS status;
    uint32_t len;

    memset(&m, 0, sizeof(m));
    m.Data = (const uint8_t *)Message;
    m.Size = MessageSize;
    m.Reply = (uint8_t *)Reply;
    m.ReplyCap = (Reply && ReplyLength) ? *ReplyLength : 0;
    Deadline(&deadline, TimeoutMs);

    Lock(P);
    if (!P->Connected || P->FreeCount == 0) {
        status = P->Connected ? STATUS_INSUFFICIENT_RESOURCES : STATUS_PORT_DISCONNECTED;
        Unlock(P);
        if (ReplyLength) *ReplyLength = 0;
        return status;
    }
    m.Slot = P->FreeSlots[--P->FreeCount];
    m.Id = (++P->NextMessageId << SIM_SHM_SLOT_BITS) | m.Slot;
    s = &P->Shm->Slots[m.Slot];
    s->MessageId = m.Id;
    s->ReplyCap = m.ReplyCap;
    s->ReplyLen = 0;
    s->Status = 0;
    s->Direct = 0;
    s->State = SIM_SLOT_QUEUED;
    P->Msgs[m.Slot] = &m;
    if (P->QTail) P->QTail->Next = &m; else P->QHead = &m;
    P->QTail = &m;
    if (AnswerParkedLocked(P)) {
        if (P->QHead) pthread_cond_signal(P->GetCv);
    } else {
        /* the reader is woken after unlocking, so it does not block again on the lock we hold */
        Unlock(P);
        pthread_cond_signal(P->GetCv);
        Lock(P);
    }
    while (s->State != SIM_SLOT_DONE) {
        int rc = SimShmWaitResult(P->Mu, pthread_cond_timedwait(&s->Cv, P->Mu, &deadline));
        if (rc == ETIMEDOUT && s->State != SIM_SLOT_DONE) {
            if (s->State == SIM_SLOT_QUEUED) QueueRemove(P, &m);
            s->State = SIM_SLOT_DONE;
            s->Status = STATUS_TIMEOUT;
            s->ReplyLen = 0;
            s->Direct = 0;
            P->Timeouts++;
        }
    }
    status = s->Status;
    if (s->Direct) {
        len = m.ReplyLen;
    } else {
        /* a reply the client wrote into the slot: never trust its length past either buffer */
        len = s->ReplyLen;
        if (len > m.ReplyCap) len = m.ReplyCap;
        if (len > SIM_SHM_REPLY_MAX) len = SIM_SHM_REPLY_MAX;
        if (len) memcpy(m.Reply, s->Reply, len);
    }
    s->MessageId = 0;
    s->State = SIM_SLOT_FREE;
    P->Msgs[m.Slot] = NULL;
    P->FreeSlots[P->FreeCount++] = m.Slot;
    Unlock(P);
    if (ReplyLength) *ReplyLength = len;
    return status;
}

static void Complete(SIM_PORT *P, uint32_t slot, NTSTATUS status)
{
    SIM_SHM_SLOT *s = &P->Shm->Slots[slot];
    s->Status = status;
    s->ReplyLen = 0;
    s->Direct = 0;
    s->State = SIM_SLOT_DONE;
    pthread_cond_signal(&s->Cv);
}

static void FailAllLocked(SIM_PORT *P, NTSTATUS status)
{
    SIM_MSG *m;
    uint32_t i;
    while ((m = P->QHead) != NULL) {
        P->QHead = m->Next;
        m->Next = NULL;
        Complete(P, m->Slot, status);
    }
    P->QTail = NULL;
    for (i = 0; i < SIM_SHM_SLOTS; i++) {
        if (P->Msgs[i] != NULL && P->Shm->Slots[i].State == SIM_SLOT_DELIVERED) Complete(P, i, status);
    }
}

static void Disconnect(SIM_PORT *P, uint64_t generation)
{
    int was = 0;
    Lock(P);
    if (P->Connected && P->Generation == generation) {
        P->Connected = 0;
        P->Generation++;
        P->ClientPid = 0;
        P->Shm->Cookie = 0;
        P->Disconnects++;
        FailAllLocked(P, STATUS_PORT_DISCONNECTED);
        pthread_cond_broadcast(P->GetCv);
        WakeParkedLocked(P);
        was = 1;
    }
    Unlock(P);
    if (was) AgentshCoreClientDisconnected(P->Core);
}

/* Blocks until a message is queued or the connection generation changes. Locked on return;
 * nonzero when the wait ended without a message (aborted). */
static int WaitQueued(SIM_PORT *P, uint64_t generation)
{
    Lock(P);
    while (P->Connected && P->Generation == generation && P->QHead == NULL && !P->Stopping) {
        (void)SimShmWaitResult(P->Mu, pthread_cond_wait(P->GetCv, P->Mu));
    }
    return !P->Connected || P->Generation != generation || P->Stopping;
}

/* Takes the head of the queue into buf (FILTER_MESSAGE_HEADER + message) and marks it delivered
 * (a notification completes here). Locked. Returns the bytes written. */
static uint32_t DeliverHeadLocked(SIM_PORT *P, uint8_t *buf, uint64_t *id)
{
    SIM_MSG *m = P->QHead;
    FILTER_MESSAGE_HEADER fh;
    P->QHead = m->Next;
    if (P->QHead == NULL) P->QTail = NULL;
    m->Next = NULL;
    memset(&fh, 0, sizeof(fh));
    fh.ReplyLength = m->Reply ? m->ReplyCap : 0;
    fh.MessageId = m->Id;
    memcpy(buf, &fh, 16);
    memcpy(buf + 16, m->Data, m->Size);
    *id = m->Id;
    if (m->Reply) P->Shm->Slots[m->Slot].State = SIM_SLOT_DELIVERED;
    else Complete(P, m->Slot, STATUS_SUCCESS);
    P->Delivered++;
    return 16u + m->Size;
}

/* The reader vanished: gives the messages it took back to the front of the queue, in their order,
 * when their senders still wait (notifications already completed). */
static void Requeue(SIM_PORT *P, const uint64_t *ids, uint32_t n)
{
    uint32_t i = n;
    Lock(P);
    while (i-- > 0) {
        SIM_MSG *m = DeliveredById(P, ids[i]);
        if (m == NULL) continue;
        P->Shm->Slots[m->Slot].State = SIM_SLOT_QUEUED;
        m->Next = P->QHead;
        P->QHead = m;
        if (P->QTail == NULL) P->QTail = m;
    }
    if (P->QHead) pthread_cond_signal(P->GetCv);
    Unlock(P);
}

/* GET: one message, blocking until one is queued. */
static int HandleGet(SIM_PORT *P, int fd, uint64_t generation, uint64_t capacity, uint8_t *buf)
{
    uint32_t total;
    uint64_t id;
    if (WaitQueued(P, generation)) {
        Unlock(P);
        return Respond(fd, SIM_E_OPERATION_ABORTED, 0, NULL, 0);
    }
    total = 16u + P->QHead->Size;
    if (capacity < total) {
        /* stays queued for a reader with a large enough buffer (or until the sender times out) */
        pthread_cond_signal(P->GetCv);
        Unlock(P);
        return Respond(fd, SIM_E_INSUFFICIENT_BUFFER, total, NULL, 0);
    }
    (void)DeliverHeadLocked(P, buf, &id);
    if (P->QHead) pthread_cond_signal(P->GetCv);
    Unlock(P);
    if (Respond(fd, SIM_S_OK, 0, buf, total) != 0) {
        Requeue(P, &id, 1);
        return -1;
    }
    return 0;
}

/* Builds a GET_MANY answer from the queue (not empty): up to `count` messages that fit `capacity`
 * each and the response limit together, in queue order, delivered. Locked. *Hr is S_OK (Arg =
 * messages, ids[] theirs) or INSUFFICIENT_BUFFER (Arg = the size the next message needs). */
static uint32_t ServeManyLocked(SIM_PORT *P, uint32_t count, uint32_t capacity, uint8_t *buf, uint64_t *ids,
                                int32_t *hr, uint64_t *arg)
{
    uint32_t used = 0, n = 0;
    if (capacity < 16u + P->QHead->Size) {
        *hr = SIM_E_INSUFFICIENT_BUFFER;
        *arg = 16u + P->QHead->Size;
        return 0;
    }
    while (n < count && P->QHead != NULL && 16u + P->QHead->Size <= capacity &&
           used + 4u + 16u + P->QHead->Size <= SIMW_MAX_PAYLOAD) {
        uint32_t len = DeliverHeadLocked(P, buf + used + 4u, &ids[n]);
        memcpy(buf + used, &len, 4);
        used += 4u + len;
        n++;
    }
    *hr = SIM_S_OK;
    *arg = n;
    return used;
}

/* Writes a GET_MANY answer; on failure gives its messages back to the queue. */
static int RespondMany(SIM_PORT *P, int fd, int32_t hr, uint64_t arg, const uint8_t *buf, uint32_t used,
                       const uint64_t *ids)
{
    if (Respond(fd, hr, arg, buf, used) == 0) return 0;
    if (hr == SIM_S_OK) Requeue(P, ids, (uint32_t)arg);
    return -1;
}

/* Parked readers see a disconnect or a stop. Locked. */
static void WakeParkedLocked(SIM_PORT *P)
{
    SIM_PARKED *r;
    for (r = P->Parked; r != NULL; r = r->Next) pthread_cond_signal(&r->Cv);
}

/* GET_MANY: what several pending overlapped FilterGetMessage calls receive at once: up to `count`
 * queued messages (see ServeManyLocked). Response: Arg = messages, payload = for each a uint32
 * length then FILTER_MESSAGE_HEADER + message. With nothing queued the request parks until a sender
 * answers it (SimPortSend) or the connection ends. */
static int HandleGetMany(SIM_PORT *P, int fd, uint64_t generation, uint64_t arg, uint8_t *buf)
{
    uint32_t count = (uint32_t)(arg >> 32), capacity = (uint32_t)arg, used;
    uint64_t ids[SIMW_GET_MANY_MAX], out = 0;
    int32_t hr;
    SIM_PARKED me, **pp;
    pthread_condattr_t ca;
    if (count == 0 || count > SIMW_GET_MANY_MAX || capacity < 16) return Respond(fd, SIM_E_INVALIDARG, 0, NULL, 0);
    Lock(P);
    if (P->QHead != NULL && P->Connected && P->Generation == generation && !P->Stopping) {
        used = ServeManyLocked(P, count, capacity, buf, ids, &hr, &out);
        if (P->QHead) pthread_cond_signal(P->GetCv);
        Unlock(P);
        return RespondMany(P, fd, hr, out, buf, used, ids);
    }
    memset(&me, 0, sizeof(me));
    me.Fd = fd;
    me.Count = count;
    me.Capacity = capacity;
    me.Buf = buf;
    me.State = PARK_WAITING;
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED); /* waited on with the process-shared lock */
    pthread_cond_init(&me.Cv, &ca);
    pthread_condattr_destroy(&ca);
    me.Next = P->Parked;
    P->Parked = &me;
    while (me.State == PARK_CLAIMED ||
           (me.State == PARK_WAITING && P->Connected && P->Generation == generation && !P->Stopping)) {
        (void)SimShmWaitResult(P->Mu, pthread_cond_wait(&me.Cv, P->Mu));
    }
    if (me.State == PARK_WAITING) {
        for (pp = &P->Parked; *pp != NULL; pp = &(*pp)->Next) {
            if (*pp == &me) {
                *pp = me.Next;
                break;
            }
        }
    }
    Unlock(P);
    pthread_cond_destroy(&me.Cv);
    if (me.State == PARK_WAITING) return Respond(fd, SIM_E_OPERATION_ABORTED, 0, NULL, 0);
    return me.State == PARK_DONE ? 0 : -1;
}

/* Called by a sender that just queued a message, locked: answers a parked GET_MANY from the queue in
 * this thread. Returns with the lock held. Nonzero when there was one to answer. */
static int AnswerParkedLocked(SIM_PORT *P)
{
    SIM_PARKED *r = P->Parked;
    uint64_t ids[SIMW_GET_MANY_MAX], out = 0;
    uint32_t used;
    int32_t hr;
    int ok;
    if (r == NULL) return 0;
    P->Parked = r->Next;
    r->State = PARK_CLAIMED;
    used = ServeManyLocked(P, r->Count, r->Capacity, r->Buf, ids, &hr, &out);
    Unlock(P);
    /* r stays valid: its thread waits until the state leaves CLAIMED */
    ok = RespondMany(P, r->Fd, hr, out, r->Buf, used, ids) == 0;
    Lock(P);
    r->State = ok ? PARK_DONE : PARK_FAILED;
    pthread_cond_signal(&r->Cv); /* under the lock: r is not touched after it is released */
    return 1;
}

static int HandleReply(SIM_PORT *P, int fd, uint64_t generation, const uint8_t *buf, uint32_t len)
{
    FILTER_REPLY_HEADER rh;
    SIM_MSG *m;
    SIM_SHM_SLOT *s;
    uint32_t data;
    if (len < 16) return Respond(fd, SIM_E_INVALIDARG, 0, NULL, 0);
    memcpy(&rh, buf, 16);
    data = len - 16;
    Lock(P);
    m = (P->Generation == generation) ? DeliveredById(P, rh.MessageId) : NULL;
    if (m == NULL) {
        P->LateReplies++;
        Unlock(P);
        return Respond(fd, SIM_E_FLT_NO_WAITER_FOR_REPLY, 0, NULL, 0);
    }
    s = &P->Shm->Slots[m->Slot];
    if (data > m->ReplyCap) {
        memcpy(m->Reply, buf + 16, m->ReplyCap);
        m->ReplyLen = m->ReplyCap;
        s->Status = (NTSTATUS)0x80000005L; /* STATUS_BUFFER_OVERFLOW */
    } else {
        memcpy(m->Reply, buf + 16, data);
        m->ReplyLen = data;
        s->Status = STATUS_SUCCESS;
    }
    s->Direct = 1;
    s->State = SIM_SLOT_DONE;
    P->Replies++;
    Unlock(P);
    pthread_cond_signal(&s->Cv); /* after unlocking, as in libfltsim's ReplyShm */
    return Respond(fd, SIM_S_OK, 0, NULL, 0);
}

static int HandleSend(SIM_PORT *P, int fd, uint64_t outCap, const uint8_t *in, uint32_t len)
{
    uint8_t out[AGENTSH_PORT_OUTPUT_SIZE];
    UINT32 n = 0;
    uint32_t cap = outCap > sizeof(out) ? (uint32_t)sizeof(out) : (uint32_t)outCap;
    /* a private, exact-size copy: the core must not read past what the client sent */
    uint8_t *copy = (uint8_t *)malloc(len ? len : 1);
    NTSTATUS st;
    if (copy == NULL) return Respond(fd, SIM_E_OUTOFMEMORY, 0, NULL, 0);
    if (len) memcpy(copy, in, len);
    st = AgentshCoreDispatch(P->Core, copy, len, cap ? out : NULL, cap, &n);
    free(copy);
    return Respond(fd, SimHresultFromNtStatus(st), 0, out, NT_SUCCESS(st) ? n : 0);
}

typedef struct { SIM_PORT *P; int Fd; } CONN;

static void *ConnThread(void *arg)
{
    CONN c = *(CONN *)arg;
    SIM_PORT *P = c.P;
    uint8_t *buf = (uint8_t *)malloc(SIMW_MAX_PAYLOAD);
    uint8_t *out = (uint8_t *)malloc(SIMW_MAX_PAYLOAD);
    SIMW_HEADER h;
    uint64_t generation = 0;
    int attached = 0;
    free(arg);
    if (buf == NULL || out == NULL) goto done;

    while (ReadAll(c.Fd, &h, sizeof(h)) == 0) {
        if (h.Length > SIMW_MAX_PAYLOAD || (h.Length && ReadAll(c.Fd, buf, h.Length) != 0)) break;
        if (h.Op == SIMW_OP_VOLUMES) {
            if (Respond(c.Fd, SIM_S_OK, 0, P->Volumes, (uint32_t)strlen(P->Volumes)) != 0) break;
            continue;
        }
        if (h.Op == SIMW_OP_CONNECT && !attached) {
            struct ucred cred;
            socklen_t cl = sizeof(cred);
            NTSTATUS st = AgentshCoreValidateConnectContext(h.Length ? buf : NULL, h.Length);
            uint64_t cookie = 0;
            uint32_t pid = 0;
            if (getsockopt(c.Fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0) pid = (uint32_t)cred.pid;
            Lock(P);
            if (NT_SUCCESS(st) && P->Connected) st = STATUS_CONNECTION_COUNT_LIMIT;
            if (NT_SUCCESS(st)) {
                P->Connected = 1;
                P->Generation++;
                generation = P->Generation;
                P->Cookie = ((uint64_t)rand() << 32) ^ (uint64_t)rand() ^ (generation << 48) ^ (uint64_t)time(NULL);
                if (P->Cookie == 0) P->Cookie = 1;
                cookie = P->Cookie;
                P->Shm->Cookie = cookie;
                P->ClientPid = pid;
                P->Connects++;
            } else {
                P->Refused++;
            }
            Unlock(P);
            if (!NT_SUCCESS(st)) {
                (void)Respond(c.Fd, SimHresultFromNtStatus(st), 0, NULL, 0);
                break;
            }
            AgentshCoreClientConnected(P->Core, pid);
            if (RespondEx(c.Fd, SIM_S_OK, cookie, NULL, 0, P->ShmFd) != 0) {
                Disconnect(P, generation);
                break;
            }
            /* the main connection carries nothing else: its end is the client's disconnect */
            while (recv(c.Fd, buf, 64, 0) > 0) {
            }
            Disconnect(P, generation);
            break;
        }
        if (h.Op == SIMW_OP_ATTACH && !attached) {
            int ok;
            Lock(P);
            ok = P->Connected && P->Cookie == h.Arg;
            generation = P->Generation;
            Unlock(P);
            if (!ok) {
                (void)Respond(c.Fd, SIM_E_HANDLE, 0, NULL, 0);
                break;
            }
            attached = 1;
            if (Respond(c.Fd, SIM_S_OK, 0, NULL, 0) != 0) break;
            continue;
        }
        if (!attached) {
            (void)Respond(c.Fd, SIM_E_HANDLE, 0, NULL, 0);
            break;
        }
        Lock(P);
        attached = P->Connected && P->Generation == generation;
        Unlock(P);
        if (!attached) {
            (void)Respond(c.Fd, SIM_E_HANDLE, 0, NULL, 0); /* an aux connection of a previous client */
            break;
        }
        if (h.Op == SIMW_OP_GET) {
            if (HandleGet(P, c.Fd, generation, h.Arg, out) != 0) break;
        } else if (h.Op == SIMW_OP_GET_MANY) {
            if (HandleGetMany(P, c.Fd, generation, h.Arg, out) != 0) break;
        } else if (h.Op == SIMW_OP_REPLY) {
            if (HandleReply(P, c.Fd, generation, buf, h.Length) != 0) break;
        } else if (h.Op == SIMW_OP_SEND) {
            if (HandleSend(P, c.Fd, h.Arg, buf, h.Length) != 0) break;
        } else {
            (void)Respond(c.Fd, SIM_E_INVALIDARG, 0, NULL, 0);
            break;
        }
    }
done:
    free(buf);
    free(out);
    close(c.Fd);
    return NULL;
}

static void *AcceptThread(void *arg)
{
    SIM_PORT *P = (SIM_PORT *)arg;
    while (!P->Stopping) {
        int fd = accept4(P->ListenFd, NULL, NULL, SOCK_CLOEXEC);
        CONN *c;
        pthread_t t;
        pthread_attr_t a;
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (P->Stopping) break;
            usleep(10000);
            continue;
        }
        c = (CONN *)malloc(sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->P = P;
        c->Fd = fd;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, ConnThread, c) != 0) {
            close(fd);
            free(c);
        }
        pthread_attr_destroy(&a);
    }
    return NULL;
}

/* The region shared with clients: the port lock, the readers' condition and one slot per message in
 * flight, each with the condition its sender waits on (all process-shared). */
static int ShmCreate(SIM_PORT *P)
{
    pthread_mutexattr_t ma;
    pthread_condattr_t ca;
    SIM_SHM *shm;
    uint32_t i;
    int fd = memfd_create("agentsh-sim-port", MFD_CLOEXEC);
    if (fd < 0) return -1;
    if (ftruncate(fd, (off_t)sizeof(SIM_SHM)) != 0) {
        close(fd);
        return -1;
    }
    shm = (SIM_SHM *)mmap(NULL, sizeof(SIM_SHM), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (shm == MAP_FAILED) {
        close(fd);
        return -1;
    }
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&shm->Mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&shm->GetCv, &ca);
    for (i = 0; i < SIM_SHM_SLOTS; i++) {
        pthread_cond_init(&shm->Slots[i].Cv, &ca);
        P->FreeSlots[i] = SIM_SHM_SLOTS - 1 - i;
    }
    pthread_condattr_destroy(&ca);
    P->FreeCount = SIM_SHM_SLOTS;
    shm->SlotCount = SIM_SHM_SLOTS;
    shm->Magic = SIM_SHM_MAGIC;
    P->Shm = shm;
    P->ShmFd = fd;
    P->Mu = &shm->Mu;
    P->GetCv = &shm->GetCv;
    return 0;
}

int SimPortStart(SIM_PORT *P, AGENTSH_CORE *Core, const char *SocketPath, const char *Volumes)
{
    struct sockaddr_un a;
    pthread_t t;
    pthread_attr_t at;
    memset(P, 0, sizeof(*P));
    if (ShmCreate(P) != 0) return -1;
    P->Core = Core;
    snprintf(P->Path, sizeof(P->Path), "%s", SocketPath);
    snprintf(P->Volumes, sizeof(P->Volumes), "%s", Volumes ? Volumes : "");
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    P->ListenFd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (P->ListenFd < 0) return -1;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    if (strlen(SocketPath) >= sizeof(a.sun_path)) return -1;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", SocketPath);
    unlink(SocketPath);
    if (bind(P->ListenFd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(P->ListenFd, 128) != 0) {
        close(P->ListenFd);
        return -1;
    }
    chmod(SocketPath, 0600); /* the port's security descriptor: the owner only */
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, AcceptThread, P) != 0) {
        pthread_attr_destroy(&at);
        return -1;
    }
    pthread_attr_destroy(&at);
    return 0;
}

void SimPortStop(SIM_PORT *P)
{
    Lock(P);
    P->Stopping = 1;
    P->Connected = 0;
    P->Generation++;
    FailAllLocked(P, STATUS_PORT_DISCONNECTED);
    pthread_cond_broadcast(P->GetCv);
    WakeParkedLocked(P);
    Unlock(P);
    shutdown(P->ListenFd, SHUT_RDWR);
    close(P->ListenFd);
    unlink(P->Path);
}

int SimPortConnected(SIM_PORT *P, uint32_t *ClientPid)
{
    int c;
    Lock(P);
    c = P->Connected;
    if (ClientPid) *ClientPid = P->ClientPid;
    Unlock(P);
    return c;
}

void SimPortStats(SIM_PORT *P, uint64_t *Delivered, uint64_t *Replies, uint64_t *Late, uint64_t *Timeouts,
                  uint64_t *Connects, uint64_t *Disconnects, uint64_t *Refused)
{
    Lock(P);
    *Delivered = P->Delivered;
    *Replies = P->Replies + P->Shm->Replies;
    *Late = P->LateReplies + P->Shm->LateReplies;
    *Timeouts = P->Timeouts;
    *Connects = P->Connects;
    *Disconnects = P->Disconnects;
    *Refused = P->Refused;
    Unlock(P);
}
