/* sim_port.h - the simulator's filter communication port (server side of libfltsim). */
#ifndef AGENTSH_SIM_PORT_H
#define AGENTSH_SIM_PORT_H
#include <pthread.h>
#include <stdint.h>
#include "agentsh_core.h"
#include "sim_shm.h"

typedef struct SIM_MSG SIM_MSG;
typedef struct SIM_PARKED SIM_PARKED;

typedef struct SIM_PORT {
    pthread_mutex_t *Mu;        /* &Shm->Mu: the port lock, shared with the client's libfltsim */
    pthread_cond_t *GetCv;      /* &Shm->GetCv */
    SIM_SHM *Shm;               /* slots of the messages in flight (see sim_shm.h) */
    int ShmFd;
    SIM_MSG *QHead, *QTail;     /* sent, not yet delivered to a FilterGetMessage */
    SIM_PARKED *Parked;         /* GET_MANY requests waiting for a message (answered by the sender) */
    SIM_MSG *Msgs[SIM_SHM_SLOTS];        /* the sender's message of each slot in use */
    uint32_t FreeSlots[SIM_SHM_SLOTS];
    uint32_t FreeCount;
    int Connected;
    uint64_t Cookie;
    uint64_t Generation;        /* bumped by every connect and disconnect */
    uint32_t ClientPid;
    uint64_t NextMessageId;
    AGENTSH_CORE *Core;
    int ListenFd;
    volatile int Stopping;
    char Path[108];
    char Volumes[2048];         /* "C:=\Device\HarddiskVolume3\n..." served to QueryDosDeviceW */
    /* counters */
    uint64_t Delivered, Replies, LateReplies, Timeouts, Disconnects, Connects, Refused;
} SIM_PORT;

/* Creates the listening socket (unlinking a stale one) and starts the accept thread. */
int SimPortStart(SIM_PORT *Port, AGENTSH_CORE *Core, const char *SocketPath, const char *Volumes);
void SimPortStop(SIM_PORT *Port);
/* The core's AGENTSH_SEND_FN: FltSendMessage semantics (see sim_port.c). */
NTSTATUS SimPortSend(void *Context, const void *Message, UINT32 MessageSize, void *Reply, UINT32 *ReplyLength,
                     UINT32 TimeoutMs);
int SimPortConnected(SIM_PORT *Port, uint32_t *ClientPid);
void SimPortStats(SIM_PORT *Port, uint64_t *Delivered, uint64_t *Replies, uint64_t *Late, uint64_t *Timeouts,
                  uint64_t *Connects, uint64_t *Disconnects, uint64_t *Refused);
#endif
