/*
 * ash_shim_user.c - user-mode implementation of agentsh_shim.h (Linux simulator and tests).
 * Not part of the kernel build: the kernel side of the shim is inline in agentsh_shim.h.
 */
#if defined(_KERNEL_MODE)
#error "ash_shim_user.c is the user-mode shim; the kernel uses agentsh_shim.h inline functions"
#endif
#include <errno.h>
#include <time.h>
#include "agentsh_shim.h"

void AgentshEventInit(AGENTSH_EVENT *Ev)
{
    pthread_condattr_t attr;
    pthread_mutex_init(&Ev->Mutex, NULL);
    pthread_condattr_init(&attr);
#if !defined(_WIN32)
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
#endif
    pthread_cond_init(&Ev->Cond, &attr);
    pthread_condattr_destroy(&attr);
    Ev->Signalled = 0;
}

void AgentshEventDelete(AGENTSH_EVENT *Ev)
{
    pthread_cond_destroy(&Ev->Cond);
    pthread_mutex_destroy(&Ev->Mutex);
}

void AgentshEventSet(AGENTSH_EVENT *Ev)
{
    pthread_mutex_lock(&Ev->Mutex);
    Ev->Signalled = 1;
    pthread_cond_broadcast(&Ev->Cond);
    pthread_mutex_unlock(&Ev->Mutex);
}

void AgentshEventReset(AGENTSH_EVENT *Ev)
{
    pthread_mutex_lock(&Ev->Mutex);
    Ev->Signalled = 0;
    pthread_mutex_unlock(&Ev->Mutex);
}

BOOLEAN AgentshEventWait(AGENTSH_EVENT *Ev, UINT32 TimeoutMs)
{
    struct timespec deadline;
    int signalled;
#if defined(_WIN32)
    clock_gettime(CLOCK_REALTIME, &deadline);
#else
    clock_gettime(CLOCK_MONOTONIC, &deadline);
#endif
    deadline.tv_sec += (time_t)(TimeoutMs / 1000u);
    deadline.tv_nsec += (long)(TimeoutMs % 1000u) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&Ev->Mutex);
    while (!Ev->Signalled) {
        int rc = pthread_cond_timedwait(&Ev->Cond, &Ev->Mutex, &deadline);
        if (rc == ETIMEDOUT) {
            break;
        }
    }
    signalled = Ev->Signalled;
    pthread_mutex_unlock(&Ev->Mutex);
    return signalled ? TRUE : FALSE;
}

static long gFailAllocAfter = -1;

void AgentshShimFailAllocAfter(long Count)
{
    __atomic_store_n(&gFailAllocAfter, Count, __ATOMIC_SEQ_CST);
}

void *AgentshAlloc(SIZE_T Size, ULONG Tag, int PoolKind)
{
    long left = __atomic_load_n(&gFailAllocAfter, __ATOMIC_SEQ_CST);
    (void)Tag;
    (void)PoolKind;
    if (left >= 0) {
        if (__atomic_sub_fetch(&gFailAllocAfter, 1, __ATOMIC_SEQ_CST) < 0) {
            __atomic_store_n(&gFailAllocAfter, 0, __ATOMIC_SEQ_CST);
            return NULL;
        }
    }
    if (Size == 0) {
        Size = 1;
    }
    return calloc(1, Size); /* zero-filled like ExAllocatePool2 */
}

void AgentshFree(void *P, ULONG Tag)
{
    (void)Tag;
    free(P);
}

UINT64 AgentshMonotonicMs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (UINT64)ts.tv_sec * 1000u + (UINT64)ts.tv_nsec / 1000000u;
}
