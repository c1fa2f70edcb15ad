/* sim_ctl.h - the simulator's control commands (JSON lines), shared by the control socket and the
 * trace runner, and its path conversion (user-facing Windows paths -> kernel NT names). */
#ifndef AGENTSH_SIM_CTL_H
#define AGENTSH_SIM_CTL_H
#include <pthread.h>
#include <stdint.h>
#include "agentsh_core.h"
#include "sim_json.h"
#include "sim_port.h"

#define SIM_MAX_VOLUMES 26
#define SIM_SID_SLOTS 4096

typedef struct SIM_VOLUME {
    char Drive;                 /* 'C' */
    char Device[96];            /* \Device\HarddiskVolume3 */
} SIM_VOLUME;

typedef struct SIM_CTX {
    AGENTSH_CORE Core;
    SIM_PORT Port;
    SIM_VOLUME Volumes[SIM_MAX_VOLUMES];
    int VolumeCount;
    char DefaultSid[96];
    int Audit;                  /* emit MSG_AUDIT_EVENT after registry operations */
    volatile int Stop;
    pthread_mutex_t SidLock;
    uint32_t SidPid[SIM_SID_SLOTS];
    char *SidText[SIM_SID_SLOTS];
} SIM_CTX;

/* Outcome of one file/registry command, for the workload report. */
typedef struct SIM_RESULT {
    int IsOp;                   /* 1 for file/registry commands that reached the core */
    int Kind;                   /* AGENTSH_KIND_* */
    uint32_t Decision;
    uint32_t Source;
    uint64_t LatencyNs;
} SIM_RESULT;

int SimCtxInit(SIM_CTX *Ctx);
void SimCtxDestroy(SIM_CTX *Ctx);
/* "C:=\Device\HarddiskVolume3"; returns 0 or -1. */
int SimAddVolume(SIM_CTX *Ctx, const char *Spec);
void SimVolumesText(SIM_CTX *Ctx, char *Out, size_t Cap);

/* Executes one JSON line; writes one response line (without newline) to Out. Never crashes on bad
 * input: errors are {"error":"..."}. Returns 1 if the command asked the process to shut down. */
int SimExecute(SIM_CTX *Ctx, const char *Line, size_t Len, JBUF *Out, SIM_RESULT *Result);

/* Path conversion (exposed for tests). Output is UTF-16 in Out (Cap units); returns length or -1
 * with *Error. Volume receives the volume part for files (may be NULL). */
int SimFilePathToNt(SIM_CTX *Ctx, const char *Path, uint16_t *Out, int Cap, uint16_t *Volume, int *VolumeLen,
                    const char **Error);
int SimRegistryPathToNt(SIM_CTX *Ctx, uint32_t Pid, const char *Path, uint16_t *Out, int Cap, const char **Error);
int SimUtf8ToUtf16(const char *In, uint16_t *Out, int Cap);
const char *SimSourceName(uint32_t Source);
#endif
