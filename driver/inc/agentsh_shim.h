/*
 * agentsh_shim.h - the only platform layer of the portable core (the files in driver/core).
 *
 * The core is compiled unchanged in two worlds:
 *   - kernel (_KERNEL_MODE, WDK / MSVC): EX_PUSH_LOCK, KEVENT, ExAllocatePool2, KeQueryInterruptTime,
 *     Interlocked*;
 *   - user mode (Linux/CI simulator and tests; also mingw in user mode for the cross check):
 *     pthread rwlock / mutex + condvar, malloc, clock_gettime(CLOCK_MONOTONIC), GCC __atomic builtins.
 *
 * Everything the core needs from the platform is here and nowhere else:
 *   AGENTSH_LOCK        reader/writer lock   AgentshLockInit/Delete/Shared/Exclusive/Release*
 *   AGENTSH_EVENT       one-shot notification event with a bounded wait
 *   AgentshAlloc/Free   tagged, zero-filled allocation (a pool tag per allocation type)
 *   AgentshMonotonicMs  monotonic milliseconds
 *   AgentshAtomic*      64-bit / 32-bit interlocked operations
 *
 * IRQL (kernel): every core entry point must be called at IRQL <= APC_LEVEL (push locks, paged
 * pool, waits). The glue guarantees it (it skips paging I/O, see kernel/ash_file.c).
 */
#ifndef AGENTSH_SHIM_H
#define AGENTSH_SHIM_H

#if defined(_MSC_VER)
#define AGENTSH_INLINE static __forceinline
#else
#define AGENTSH_INLINE static inline __attribute__((always_inline))
#endif

#if defined(_KERNEL_MODE)
/* ------------------------------------------------------------------------------------------ */
/* Kernel                                                                                       */
/* ------------------------------------------------------------------------------------------ */
#include <fltKernel.h>

#ifndef offsetof
#define offsetof(t, f) FIELD_OFFSET(t, f)
#endif

typedef EX_PUSH_LOCK AGENTSH_LOCK;

#define AgentshLockInit(l)    ExInitializePushLock(l)
#define AgentshLockDelete(l)  ((void)(l))

_IRQL_requires_max_(APC_LEVEL)
_Acquires_shared_lock_(*Lock)
AGENTSH_INLINE void AgentshLockShared(_Inout_ AGENTSH_LOCK *Lock)
{
    KeEnterCriticalRegion();
    ExAcquirePushLockShared(Lock);
}

_IRQL_requires_max_(APC_LEVEL)
_Acquires_exclusive_lock_(*Lock)
AGENTSH_INLINE void AgentshLockExclusive(_Inout_ AGENTSH_LOCK *Lock)
{
    KeEnterCriticalRegion();
    ExAcquirePushLockExclusive(Lock);
}

_Releases_shared_lock_(*Lock)
AGENTSH_INLINE void AgentshUnlockShared(_Inout_ AGENTSH_LOCK *Lock)
{
    ExReleasePushLockShared(Lock);
    KeLeaveCriticalRegion();
}

_Releases_exclusive_lock_(*Lock)
AGENTSH_INLINE void AgentshUnlockExclusive(_Inout_ AGENTSH_LOCK *Lock)
{
    ExReleasePushLockExclusive(Lock);
    KeLeaveCriticalRegion();
}

/* A notification event: Set wakes every waiter and stays signalled. Must live in non-paged pool. */
typedef struct _AGENTSH_EVENT {
    KEVENT Event;
} AGENTSH_EVENT;

AGENTSH_INLINE void AgentshEventInit(_Out_ AGENTSH_EVENT *Ev)
{
    KeInitializeEvent(&Ev->Event, NotificationEvent, FALSE);
}
#define AgentshEventDelete(e) ((void)(e))
#define AgentshEventReset(e) KeClearEvent(&(e)->Event)
AGENTSH_INLINE void AgentshEventSet(_Inout_ AGENTSH_EVENT *Ev)
{
    (void)KeSetEvent(&Ev->Event, IO_NO_INCREMENT, FALSE);
}
/* TRUE when signalled within TimeoutMs. */
_IRQL_requires_max_(APC_LEVEL)
AGENTSH_INLINE BOOLEAN AgentshEventWait(_Inout_ AGENTSH_EVENT *Ev, _In_ UINT32 TimeoutMs)
{
    LARGE_INTEGER due;
    due.QuadPart = -(LONGLONG)TimeoutMs * 10000LL;
    return KeWaitForSingleObject(&Ev->Event, Executive, KernelMode, FALSE, &due) == STATUS_SUCCESS;
}

/* Pool: paged for table entries (touched only at <= APC_LEVEL under push locks), non-paged for
 * objects that embed a KEVENT. Both zero-filled by ExAllocatePool2. */
#define AGENTSH_POOL_PAGED     0
#define AGENTSH_POOL_NONPAGED  1
AGENTSH_INLINE void *AgentshAlloc(_In_ SIZE_T Size, _In_ ULONG Tag, _In_ int PoolKind)
{
    return ExAllocatePool2(PoolKind == AGENTSH_POOL_NONPAGED ? POOL_FLAG_NON_PAGED : POOL_FLAG_PAGED,
                           Size, Tag);
}
#define AgentshFree(p, tag) ExFreePoolWithTag((p), (tag))

AGENTSH_INLINE UINT64 AgentshMonotonicMs(void)
{
    return (UINT64)(KeQueryInterruptTime() / 10000ULL);
}

#define AgentshAtomicInc64(p)         ((UINT64)InterlockedIncrement64((volatile LONG64 *)(p)))
#define AgentshAtomicAdd64(p, v)      ((UINT64)InterlockedAdd64((volatile LONG64 *)(p), (LONG64)(v)))
#define AgentshAtomicLoad64(p)        ((UINT64)InterlockedCompareExchange64((volatile LONG64 *)(p), 0, 0))
#define AgentshAtomicStore64(p, v)    ((void)InterlockedExchange64((volatile LONG64 *)(p), (LONG64)(v)))
#define AgentshAtomicLoad32(p)        ((UINT32)InterlockedCompareExchange((volatile LONG *)(p), 0, 0))
#define AgentshAtomicStore32(p, v)    ((void)InterlockedExchange((volatile LONG *)(p), (LONG)(v)))
#define AgentshAtomicInc32(p)         ((UINT32)InterlockedIncrement((volatile LONG *)(p)))
#define AgentshAtomicDec32(p)         ((UINT32)InterlockedDecrement((volatile LONG *)(p)))

#define AgentshMemCopy(d, s, n)  RtlCopyMemory((d), (s), (n))
#define AgentshMemZero(d, n)     RtlZeroMemory((d), (n))
#define AgentshMemCmp(a, b, n)   (RtlCompareMemory((a), (b), (n)) == (n) ? 0 : 1)
#define AgentshAssert(e)         NT_ASSERT(e)

#else
/* ------------------------------------------------------------------------------------------ */
/* User mode (Linux simulator, unit tests; mingw for the cross check)                           */
/* ------------------------------------------------------------------------------------------ */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <assert.h>
#include "protocol.h"

#if !defined(_WIN32) || !defined(_BASETSD_H_)
#ifndef AGENTSH_HAVE_UINT8
#define AGENTSH_HAVE_UINT8
typedef uint8_t UINT8;
#endif
#endif
#ifndef _WIN32
typedef int32_t NTSTATUS;
typedef uint8_t BOOLEAN;
typedef uint32_t ULONG;
typedef size_t SIZE_T;
#ifndef TRUE
#define TRUE 1
#define FALSE 0
#endif
#else
#ifndef _NTDEF_
typedef LONG NTSTATUS;
#endif
#endif

/* SAL annotations are documentation outside MSVC. */
#ifndef _In_
#define _In_
#define _In_opt_
#define _Out_
#define _Out_opt_
#define _Inout_
#define _Inout_opt_
#define _In_reads_(n)
#define _In_reads_bytes_(n)
#define _In_reads_bytes_opt_(n)
#define _Out_writes_(n)
#define _Out_writes_bytes_(n)
#define _Out_writes_bytes_opt_(n)
#define _Out_writes_bytes_to_(n, m)
#define _Out_writes_bytes_to_opt_(n, m)
#define _Must_inspect_result_
#define _Success_(e)
#define _IRQL_requires_max_(l)
#define _Acquires_shared_lock_(l)
#define _Acquires_exclusive_lock_(l)
#define _Releases_shared_lock_(l)
#define _Releases_exclusive_lock_(l)
#define _Requires_lock_held_(l)
#define _Guarded_by_(l)
#endif

typedef pthread_rwlock_t AGENTSH_LOCK;
#define AgentshLockInit(l)        ((void)pthread_rwlock_init((l), NULL))
#define AgentshLockDelete(l)      ((void)pthread_rwlock_destroy(l))
#define AgentshLockShared(l)      ((void)pthread_rwlock_rdlock(l))
#define AgentshLockExclusive(l)   ((void)pthread_rwlock_wrlock(l))
#define AgentshUnlockShared(l)    ((void)pthread_rwlock_unlock(l))
#define AgentshUnlockExclusive(l) ((void)pthread_rwlock_unlock(l))

typedef struct _AGENTSH_EVENT {
    pthread_mutex_t Mutex;
    pthread_cond_t Cond;
    int Signalled;
} AGENTSH_EVENT;

void AgentshEventInit(AGENTSH_EVENT *Ev);
void AgentshEventDelete(AGENTSH_EVENT *Ev);
void AgentshEventSet(AGENTSH_EVENT *Ev);
void AgentshEventReset(AGENTSH_EVENT *Ev);
BOOLEAN AgentshEventWait(AGENTSH_EVENT *Ev, UINT32 TimeoutMs);

#define AGENTSH_POOL_PAGED     0
#define AGENTSH_POOL_NONPAGED  1
/* Tests can make the Nth allocation fail (AgentshShimFailAllocAfter) to exercise error paths. */
void *AgentshAlloc(SIZE_T Size, ULONG Tag, int PoolKind);
void AgentshFree(void *P, ULONG Tag);
void AgentshShimFailAllocAfter(long Count); /* -1 = never fail (default) */

UINT64 AgentshMonotonicMs(void);

#define AgentshAtomicInc64(p)      (__atomic_add_fetch((p), 1, __ATOMIC_SEQ_CST))
#define AgentshAtomicAdd64(p, v)   (__atomic_add_fetch((p), (UINT64)(v), __ATOMIC_SEQ_CST))
#define AgentshAtomicLoad64(p)     (__atomic_load_n((p), __ATOMIC_SEQ_CST))
#define AgentshAtomicStore64(p, v) (__atomic_store_n((p), (UINT64)(v), __ATOMIC_SEQ_CST))
#define AgentshAtomicLoad32(p)     (__atomic_load_n((p), __ATOMIC_SEQ_CST))
#define AgentshAtomicStore32(p, v) (__atomic_store_n((p), (UINT32)(v), __ATOMIC_SEQ_CST))
#define AgentshAtomicInc32(p)      (__atomic_add_fetch((p), 1, __ATOMIC_SEQ_CST))
#define AgentshAtomicDec32(p)      (__atomic_sub_fetch((p), 1, __ATOMIC_SEQ_CST))

#define AgentshMemCopy(d, s, n)  memcpy((d), (s), (n))
#define AgentshMemZero(d, n)     memset((d), 0, (n))
#define AgentshMemCmp(a, b, n)   memcmp((a), (b), (n))
#define AgentshAssert(e)         assert(e)


#endif /* _KERNEL_MODE */

/* ---------------------------------------------------------------------------------------------
 * NTSTATUS values the core returns (same numbers in every build).
 * ------------------------------------------------------------------------------------------- */
#ifndef NT_SUCCESS
#define NT_SUCCESS(s) (((NTSTATUS)(s)) >= 0)
#endif
#define AGENTSH_STATUS(x) ((NTSTATUS)(x))
#ifndef STATUS_SUCCESS
#define STATUS_SUCCESS                 AGENTSH_STATUS(0x00000000L)
#endif
#ifndef STATUS_TIMEOUT
#define STATUS_TIMEOUT                 AGENTSH_STATUS(0x00000102L) /* a SUCCESS code: test explicitly */
#endif
#ifndef STATUS_INVALID_PARAMETER
#define STATUS_INVALID_PARAMETER       AGENTSH_STATUS(0xC000000DL)
#endif
#ifndef STATUS_BUFFER_TOO_SMALL
#define STATUS_BUFFER_TOO_SMALL        AGENTSH_STATUS(0xC0000023L)
#endif
#ifndef STATUS_OBJECT_NAME_COLLISION
#define STATUS_OBJECT_NAME_COLLISION   AGENTSH_STATUS(0xC0000035L)
#endif
#ifndef STATUS_PORT_DISCONNECTED
#define STATUS_PORT_DISCONNECTED       AGENTSH_STATUS(0xC0000037L)
#endif
#ifndef STATUS_REVISION_MISMATCH
#define STATUS_REVISION_MISMATCH       AGENTSH_STATUS(0xC0000059L)
#endif
#ifndef STATUS_INSUFFICIENT_RESOURCES
#define STATUS_INSUFFICIENT_RESOURCES  AGENTSH_STATUS(0xC000009AL)
#endif
#ifndef STATUS_NOT_SUPPORTED
#define STATUS_NOT_SUPPORTED           AGENTSH_STATUS(0xC00000BBL)
#endif
#ifndef STATUS_NOT_FOUND
#define STATUS_NOT_FOUND               AGENTSH_STATUS(0xC0000225L)
#endif
#ifndef STATUS_CONNECTION_COUNT_LIMIT
#define STATUS_CONNECTION_COUNT_LIMIT  AGENTSH_STATUS(0xC0000246L)
#endif
#ifndef STATUS_ACCESS_DENIED
#define STATUS_ACCESS_DENIED           AGENTSH_STATUS(0xC0000022L)
#endif

/* Pool tags, one per allocation type. AGENTSH_TAG('A','s','h','C') reads "AshC" in a pool dump
 * (same value as the MSVC multi-character constant 'ChsA', written portably). */
#define AGENTSH_TAG(a, b, c, d) ((ULONG)(a) | ((ULONG)(b) << 8) | ((ULONG)(c) << 16) | ((ULONG)(d) << 24))
#define AGENTSH_TAG_CACHE_ENTRY   AGENTSH_TAG('A', 's', 'h', 'C')
#define AGENTSH_TAG_CACHE_BUCKETS AGENTSH_TAG('A', 's', 'h', 'B')
#define AGENTSH_TAG_INFLIGHT      AGENTSH_TAG('A', 's', 'h', 'I')
#define AGENTSH_TAG_SESSION       AGENTSH_TAG('A', 's', 'h', 'S')
#define AGENTSH_TAG_PROCESS       AGENTSH_TAG('A', 's', 'h', 'P')
#define AGENTSH_TAG_MESSAGE       AGENTSH_TAG('A', 's', 'h', 'M')
#define AGENTSH_TAG_KEY           AGENTSH_TAG('A', 's', 'h', 'K')
#define AGENTSH_TAG_NOTIFY        AGENTSH_TAG('A', 's', 'h', 'N')
#define AGENTSH_TAG_CAPTURE       AGENTSH_TAG('A', 's', 'h', 'U')
#define AGENTSH_TAG_OUTPUT        AGENTSH_TAG('A', 's', 'h', 'O')
#define AGENTSH_TAG_NAME          AGENTSH_TAG('A', 's', 'h', 'F')

#endif /* AGENTSH_SHIM_H */
