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
#endif
