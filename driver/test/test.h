/* test.h - a tiny C test harness: one line per test, a summary line "driver-c: N passed, M failed". */
#ifndef AGENTSH_TEST_H
#define AGENTSH_TEST_H
#include <stdio.h>
#include <stdint.h>
#include "agentsh_core.h"

typedef void (*TEST_FN)(void);
typedef struct { const char *Name; TEST_FN Fn; } TEST_CASE;

extern int gTestFailed;
void TestFail(const char *file, int line, const char *expr);

#define CHECK(e) do { if (!(e)) { TestFail(__FILE__, __LINE__, #e); return; } } while (0)
#define CHECK_EQ(a, b) do { unsigned long long _a = (unsigned long long)(a), _b = (unsigned long long)(b); \
    if (_a != _b) { char _m[256]; snprintf(_m, sizeof _m, "%s == %s (%llu vs %llu, 0x%llx vs 0x%llx)", #a, #b, _a, _b, _a, _b); \
    TestFail(__FILE__, __LINE__, _m); return; } } while (0)

/* ---- helpers (test_util.c) ---- */
/* UTF-8/ASCII literal -> UTF-16 in a static ring of buffers (valid until 16 later calls). */
AGENTSH_USTR U(const char *ascii);
AGENTSH_USTR U16(const uint16_t *s, uint32_t n);

typedef struct FAKE_PORT {
    int Mode;                /* FAKE_* */
    uint32_t Decision;
    uint32_t Ttl;
    uint32_t DelayMs;        /* sleep before answering */
    int Block;               /* 1: block until Release */
    volatile int Calls;
    volatile int Notifications;
    NTSTATUS NotifyStatus;   /* what a notification's send returns (0: success, delivered) */
    uint32_t LastType;
    uint64_t LastRequestId;
    uint8_t LastMessage[512];
    uint32_t LastSize;
    pthread_mutex_t Mutex;
    pthread_cond_t Cond;
    int Released;
} FAKE_PORT;

enum { FAKE_ANSWER = 0, FAKE_TIMEOUT, FAKE_DISCONNECTED, FAKE_SHORT, FAKE_WRONG_ID, FAKE_WRONG_TYPE,
       FAKE_BAD_DECISION, FAKE_NONZERO_FLAGS, FAKE_ERROR_STATUS, FAKE_LONG };

void FakePortInit(FAKE_PORT *P);
void FakePortRelease(FAKE_PORT *P);
NTSTATUS FakeSend(void *Ctx, const void *Msg, UINT32 Size, void *Reply, UINT32 *ReplyLength, UINT32 TimeoutMs);

extern uint64_t gFakeNow;
UINT64 FakeClock(void *Ctx);

/* A core with a fake port and fake clock, a connected client and a session (token 7, root 100). */
void CoreSetup(AGENTSH_CORE *Core, FAKE_PORT *Port);
void CoreTeardown(AGENTSH_CORE *Core);
AGENTSH_VERDICT DecideFile(AGENTSH_CORE *Core, uint32_t Pid, uint32_t Op, const char *Path, const char *Dest);
AGENTSH_VERDICT DecideReg(AGENTSH_CORE *Core, uint32_t Pid, uint32_t Op, const char *Key, const char *Value);
NTSTATUS SendConfig(AGENTSH_CORE *Core, uint32_t FailMode, uint32_t Timeout, uint32_t MaxFail, uint32_t Entries,
                    uint32_t DefTtl, uint32_t MaxTtl, uint32_t Probe);
NTSTATUS Dispatch(AGENTSH_CORE *Core, const void *Msg, uint32_t Size);
/* builds a message with one string field; returns malloc'd buffer */
void *BuildWithString(uint32_t Type, uint32_t FixedSize, uint32_t FieldOffset, const char *Str, uint32_t *Size);
void GetMetrics(AGENTSH_CORE *Core, AGENTSH_METRICS *M);
/* The count of (DECISION_SOURCE_*, kind, operation, decision) in a GET_DECISION_COUNTS reply (0 when
 * absent); the reply is checked by the validator and for its order. */
UINT64 DecisionCount(AGENTSH_CORE *Core, uint32_t Source, uint32_t Kind, uint32_t Op, uint32_t Decision);
#endif
