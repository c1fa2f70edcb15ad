/*
 * sim_shm.h - the port state that agentsh-sim shares with libfltsim through a memfd mapping, so that
 * FilterReplyMessage completes in the caller's thread like the real one (a system call that wakes
 * the kernel thread waiting in FltSendMessage), instead of a socket round trip to a simulator thread.
 * Private to fltsim.c and sim_port.c, like sim_wire.h.
 *
 * The simulator creates the region (SimPortStart) and passes its fd with SCM_RIGHTS in the CONNECT
 * response. Mu is the port lock for both processes (process-shared, robust: a client that dies
 * holding it does not wedge the simulator). Every message a sender has in flight owns one slot; the
 * slot index is the low SIM_SHM_SLOT_BITS of its MessageId, so a reply finds its waiter in O(1).
 * A reply longer than SIM_SHM_REPLY_MAX bytes, or a client without the region, uses SIMW_OP_REPLY.
 */
#ifndef AGENTSH_SIM_SHM_H
#define AGENTSH_SIM_SHM_H
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#define SIM_SHM_MAGIC      0x53484d31u /* "SHM1" */
#define SIM_SHM_SLOT_BITS  12u
#define SIM_SHM_SLOTS      (1u << SIM_SHM_SLOT_BITS)
#define SIM_SHM_REPLY_MAX  64u

/* slot states */
#define SIM_SLOT_FREE      0u
#define SIM_SLOT_QUEUED    1u  /* sent, not yet delivered to a FilterGetMessage */
#define SIM_SLOT_DELIVERED 2u  /* delivered, waiting for FilterReplyMessage */
#define SIM_SLOT_DONE      3u  /* answered, timed out or failed: the sender may return */

typedef struct SIM_SHM_SLOT {
    uint64_t MessageId;
    uint32_t State;
    uint32_t ReplyCap;     /* the sender's reply buffer; 0 = notification */
    uint32_t ReplyLen;     /* bytes in Reply (shared-memory replies) */
    int32_t Status;        /* NTSTATUS for the sender */
    uint32_t Direct;       /* the reply was written to the sender's buffer (socket path) */
    uint32_t Reserved;
    pthread_cond_t Cv;     /* the sender waits here */
    uint8_t Reply[SIM_SHM_REPLY_MAX];
} SIM_SHM_SLOT;

typedef struct SIM_SHM {
    uint32_t Magic;
    uint32_t SlotCount;
    pthread_mutex_t Mu;
    pthread_cond_t GetCv;  /* readers (simulator threads) wait here for a queued message */
    uint64_t Cookie;       /* of the connected client; 0 when none */
    uint64_t Replies;      /* shared-memory replies */
    uint64_t LateReplies;
    SIM_SHM_SLOT Slots[SIM_SHM_SLOTS];
} SIM_SHM;

/* Locks the shared port lock; recovers it when its owner died (the state it guards is kept
 * consistent at every store that matters: a slot's State is written last). */
static inline void SimShmLock(pthread_mutex_t *mu)
{
    if (pthread_mutex_lock(mu) == EOWNERDEAD) pthread_mutex_consistent(mu);
}

static inline int SimShmWaitResult(pthread_mutex_t *mu, int rc)
{
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(mu);
        return 0;
    }
    return rc;
}
#endif
