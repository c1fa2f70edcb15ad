/*
 * fltsim_iocp.h - libfltsim's I/O completion ports (private to fltsim.c and fltsim_iocp.c).
 *
 * The Windows objects a broker uses to keep many FilterGetMessage calls pending at once and collect
 * their completions in one wait (the pattern of Microsoft's scanner minifilter sample):
 *
 *   HANDLE CreateIoCompletionPort(HANDLE FileHandle, HANDLE ExistingCompletionPort,
 *                                 ULONG_PTR CompletionKey, DWORD NumberOfConcurrentThreads);
 *   BOOL   GetQueuedCompletionStatusEx(HANDLE, LPOVERLAPPED_ENTRY, ULONG ulCount, PULONG ulNumEntriesRemoved,
 *                                      DWORD dwMilliseconds, BOOL fAlertable);
 *   BOOL   PostQueuedCompletionStatus(HANDLE, DWORD, ULONG_PTR, LPOVERLAPPED);
 *   BOOL   CloseHandle(HANDLE);             (completion ports only)
 *
 * A completion port is a FIFO of packets guarded by one lock. Packets are what the I/O manager
 * queues: the key of the file handle, the OVERLAPPED of the request, its NTSTATUS and byte count.
 * An associated port handle holds a reference, so packets it posts while closing (cancelled reads)
 * always have a queue to go to, even after CloseHandle.
 *
 * The first filter port associated with a completion port may give it a pump: a thread that would
 * sleep in GetQueuedCompletionStatusEx with nothing queued fetches that port's messages itself
 * (the library's pump thread would otherwise fetch them and wake it). On Windows the kernel completes
 * a read in the sending thread and wakes the waiter directly; this keeps the simulated path to one
 * wake-up in the client as well, instead of two.
 */
#ifndef AGENTSH_FLTSIM_IOCP_H
#define AGENTSH_FLTSIM_IOCP_H
#include <stdint.h>

#define FLTSIM_EXPORT __attribute__((visibility("default")))
#define FLTSIM_HIDDEN __attribute__((visibility("hidden")))

/* x64 layouts (minwinbase.h): OVERLAPPED is 32 bytes, OVERLAPPED_ENTRY 32 bytes. */
typedef struct FLTSIM_OVERLAPPED {
    uint64_t Internal;       /* NTSTATUS of the request (STATUS_PENDING while pending) */
    uint64_t InternalHigh;   /* bytes transferred */
    uint32_t Offset;
    uint32_t OffsetHigh;
    void *hEvent;
} FLTSIM_OVERLAPPED;

typedef struct FLTSIM_OVERLAPPED_ENTRY {
    uint64_t lpCompletionKey;
    FLTSIM_OVERLAPPED *lpOverlapped;
    uint64_t Internal;
    uint32_t dwNumberOfBytesTransferred;
    uint32_t Pad;
} FLTSIM_OVERLAPPED_ENTRY;

typedef struct FLTSIM_PACKET {
    uint64_t Key;
    FLTSIM_OVERLAPPED *Overlapped;
    int32_t Status;
    uint32_t Bytes;
} FLTSIM_PACKET;

typedef struct FLTSIM_IOCP FLTSIM_IOCP;

/* the calling thread's GetLastError() value */
FLTSIM_HIDDEN void FltsimSetLastError(uint32_t e);

/* A new completion port (one reference, the handle's); NULL when out of memory or handles. */
FLTSIM_HIDDEN FLTSIM_IOCP *FltsimIocpCreate(void);
/* A reference to the open completion port `h` (NULL if h is none); give it back with Release. */
FLTSIM_HIDDEN FLTSIM_IOCP *FltsimIocpAcquire(void *h);
FLTSIM_HIDDEN void FltsimIocpRelease(FLTSIM_IOCP *c);
/* Queues packets and wakes waiters. With completeOverlapped, each packet's OVERLAPPED gets its
 * status and byte count first, as the I/O manager completes a request. Returns 0, or -1 when out of
 * memory (nothing queued). */
FLTSIM_HIDDEN int FltsimIocpPost(FLTSIM_IOCP *c, const FLTSIM_PACKET *p, uint32_t n, int completeOverlapped);

/* A pump (see above): called by a waiter with nothing queued, outside the completion port's lock.
 * Returns FLTSIM_PUMP_IDLE when it has nothing to fetch now (the waiter then sleeps until a packet
 * or FltsimIocpKick), FLTSIM_PUMP_RAN when it fetched, failed or was interrupted (the waiter looks
 * at the queue again). It returns soon after `wakeFd` becomes readable (a post, a close) and after
 * `timeoutMs` (-1: none). */
#define FLTSIM_PUMP_IDLE 0
#define FLTSIM_PUMP_RAN 1
typedef int (*FLTSIM_IOCP_PUMP)(void *ctx, FLTSIM_IOCP *c, int wakeFd, int timeoutMs);
/* Gives c the pump fn(ctx) unless it has one; returns 1 when it was set. */
FLTSIM_HIDDEN int FltsimIocpSetPump(FLTSIM_IOCP *c, FLTSIM_IOCP_PUMP fn, void *ctx);
/* Removes c's pump if it is ctx's (no call starts after this returns). */
FLTSIM_HIDDEN void FltsimIocpClearPump(FLTSIM_IOCP *c, void *ctx);
/* The pump may have something to fetch now: a sleeping waiter tries it. */
FLTSIM_HIDDEN void FltsimIocpKick(FLTSIM_IOCP *c);
#endif
