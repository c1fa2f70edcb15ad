/*
 * sim_ctl.c - control commands of agentsh-sim (see sim/README.md for the protocol), and the
 * conversion of user-facing paths to the names the kernel hands a minifilter:
 *   C:\src\a.c            -> \Device\HarddiskVolume3\src\a.c   (volume table; '/' accepted as '\')
 *   \\?\C:\x, \??\C:\x    -> same as C:\x
 *   \\server\share\x      -> \Device\Mup\server\share\x
 *   \Device\...           -> unchanged
 *   HKLM\X | HKEY_LOCAL_MACHINE\X -> \REGISTRY\MACHINE\X
 *   HKU\X  | HKEY_USERS\X         -> \REGISTRY\USER\X
 *   HKCU\X | HKEY_CURRENT_USER\X  -> \REGISTRY\USER\<SID of the process>\X
 *   HKCR\X | HKEY_CLASSES_ROOT\X  -> \REGISTRY\MACHINE\SOFTWARE\Classes\X
 *   HKCC\X                        -> \REGISTRY\MACHINE\SYSTEM\CurrentControlSet\Hardware Profiles\Current\X
 *   \REGISTRY\...                 -> unchanged
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "sim_ctl.h"

#define SIM_PATH_CAP 32768

static uint64_t NowNs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int SimUtf8ToUtf16(const char *In, uint16_t *Out, int Cap)
{
    const unsigned char *p = (const unsigned char *)In;
    int n = 0;
    while (*p) {
        uint32_t cp;
        int extra;
        if (*p < 0x80) { cp = *p++; extra = 0; }
        else if ((*p & 0xE0) == 0xC0) { cp = *p++ & 0x1F; extra = 1; }
        else if ((*p & 0xF0) == 0xE0) { cp = *p++ & 0x0F; extra = 2; }
        else if ((*p & 0xF8) == 0xF0) { cp = *p++ & 0x07; extra = 3; }
        else return -1;
        while (extra-- > 0) {
            if ((*p & 0xC0) != 0x80) return -1;
            cp = (cp << 6) | (*p++ & 0x3F);
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) return -1;
        if (cp >= 0x10000) {
            if (cp > 0x10FFFF || n + 2 > Cap) return -1;
            cp -= 0x10000;
            Out[n++] = (uint16_t)(0xD800 + (cp >> 10));
            Out[n++] = (uint16_t)(0xDC00 + (cp & 0x3FF));
        } else {
            if (n + 1 > Cap) return -1;
            Out[n++] = (uint16_t)cp;
        }
    }
    return n;
}

static int AppendAscii(uint16_t *Out, int n, int Cap, const char *s)
{
    while (*s) {
        if (n >= Cap) return -1;
        Out[n++] = (uint16_t)(unsigned char)*s++;
    }
    return n;
}

/* Appends UTF-8 text converting '/' to '\'. */
static int AppendPath(uint16_t *Out, int n, int Cap, const char *s)
{
    int m, i;
    if (n < 0) return -1;
    m = SimUtf8ToUtf16(s, Out + n, Cap - n);
    if (m < 0) return -1;
    for (i = n; i < n + m; i++) if (Out[i] == '/') Out[i] = '\\';
    return n + m;
}

int SimFilePathToNt(SIM_CTX *Ctx, const char *Path, uint16_t *Out, int Cap, uint16_t *Volume, int *VolumeLen,
                    const char **Error)
{
    const char *p = Path;
    int n, i;
    *Error = NULL;
    if (VolumeLen) *VolumeLen = 0;
    if (!strncmp(p, "\\\\?\\", 4) || !strncmp(p, "\\??\\", 4)) p += 4;
    if (((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z')) && p[1] == ':') {
        char d = (char)(p[0] & ~0x20);
        const SIM_VOLUME *v = NULL;
        for (i = 0; i < Ctx->VolumeCount; i++) if (Ctx->Volumes[i].Drive == d) v = &Ctx->Volumes[i];
        if (v == NULL) { *Error = "unknown drive letter (see the volumes command)"; return -1; }
        n = AppendAscii(Out, 0, Cap, v->Device);
        if (Volume && VolumeLen && n > 0) {
            memcpy(Volume, Out, (size_t)n * 2);
            *VolumeLen = n;
        }
        if (p[2] != '\\' && p[2] != '/') { *Error = "drive-relative paths are not supported (use C:\\...)"; return -1; }
        n = AppendPath(Out, n, Cap, p + 2);
    } else if ((p[0] == '\\' && p[1] == '\\') || (p[0] == '/' && p[1] == '/')) {
        n = AppendAscii(Out, 0, Cap, "\\Device\\Mup");
        if (Volume && VolumeLen && n > 0) {
            memcpy(Volume, Out, (size_t)n * 2);
            *VolumeLen = n;
        }
        n = AppendPath(Out, n, Cap, p + 1);
    } else if (!strncasecmp(p, "\\Device\\", 8)) {
        const char *slash = strchr(p + 8, '\\');
        n = AppendPath(Out, 0, Cap, p);
        if (Volume && VolumeLen && n > 0) {
            int vl = slash ? (int)(slash - p) : n; /* ASCII device names */
            if (vl > n) vl = n;
            memcpy(Volume, Out, (size_t)vl * 2);
            *VolumeLen = vl;
        }
    } else {
        *Error = "path must be absolute: C:\\..., \\\\server\\share\\... or \\Device\\...";
        return -1;
    }
    if (n <= 0) { *Error = "path is not valid UTF-8 or too long"; return -1; }
    return n;
}

static const char *SidFor(SIM_CTX *Ctx, uint32_t Pid, char *Buf, size_t Cap)
{
    uint32_t slot = (Pid >> 2) % SIM_SID_SLOTS, i;
    snprintf(Buf, Cap, "%s", Ctx->DefaultSid);
    pthread_mutex_lock(&Ctx->SidLock);
    for (i = 0; i < SIM_SID_SLOTS; i++) {
        uint32_t s = (slot + i) % SIM_SID_SLOTS;
        if (Ctx->SidPid[s] == 0) break;
        if (Ctx->SidPid[s] == Pid) {
            snprintf(Buf, Cap, "%s", Ctx->SidText[s]);
            break;
        }
    }
    pthread_mutex_unlock(&Ctx->SidLock);
    return Buf;
}

static void SetSid(SIM_CTX *Ctx, uint32_t Pid, const char *Sid)
{
    uint32_t slot = (Pid >> 2) % SIM_SID_SLOTS, i;
    pthread_mutex_lock(&Ctx->SidLock);
    for (i = 0; i < SIM_SID_SLOTS; i++) {
        uint32_t s = (slot + i) % SIM_SID_SLOTS;
        if (Ctx->SidPid[s] == 0 || Ctx->SidPid[s] == Pid) {
            free(Ctx->SidText[s]);
            Ctx->SidText[s] = strdup(Sid);
            Ctx->SidPid[s] = Ctx->SidText[s] ? Pid : 0;
            break;
        }
    }
    pthread_mutex_unlock(&Ctx->SidLock);
}

int SimRegistryPathToNt(SIM_CTX *Ctx, uint32_t Pid, const char *Path, uint16_t *Out, int Cap, const char **Error)
{
    static const struct { const char *Short, *Long, *Nt; } roots[] = {
        { "HKLM", "HKEY_LOCAL_MACHINE", "\\REGISTRY\\MACHINE" },
        { "HKU", "HKEY_USERS", "\\REGISTRY\\USER" },
        { "HKCR", "HKEY_CLASSES_ROOT", "\\REGISTRY\\MACHINE\\SOFTWARE\\Classes" },
        { "HKCC", "HKEY_CURRENT_CONFIG", "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Hardware Profiles\\Current" },
    };
    const char *rest = NULL;
    char sid[128];
    int n = -1;
    size_t i;
    *Error = NULL;
    if (!strncasecmp(Path, "\\REGISTRY\\", 10) || !strcasecmp(Path, "\\REGISTRY")) {
        n = AppendPath(Out, 0, Cap, Path);
    } else if (!strncasecmp(Path, "HKCU", 4) && (Path[4] == 0 || Path[4] == '\\')) {
        rest = Path + 4;
    } else if (!strncasecmp(Path, "HKEY_CURRENT_USER", 17) && (Path[17] == 0 || Path[17] == '\\')) {
        rest = Path + 17;
    }
    if (rest != NULL) {
        n = AppendAscii(Out, 0, Cap, "\\REGISTRY\\USER\\");
        n = n < 0 ? -1 : AppendAscii(Out, n, Cap, SidFor(Ctx, Pid, sid, sizeof(sid)));
        n = AppendPath(Out, n, Cap, rest);
    } else if (n < 0) {
        for (i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
            size_t ls = strlen(roots[i].Short), ll = strlen(roots[i].Long);
            if (!strncasecmp(Path, roots[i].Short, ls) && (Path[ls] == 0 || Path[ls] == '\\')) rest = Path + ls;
            else if (!strncasecmp(Path, roots[i].Long, ll) && (Path[ll] == 0 || Path[ll] == '\\')) rest = Path + ll;
            if (rest) {
                n = AppendAscii(Out, 0, Cap, roots[i].Nt);
                n = AppendPath(Out, n, Cap, rest);
                break;
            }
        }
        if (rest == NULL) {
            *Error = "registry path must start with HKLM, HKCU, HKU, HKCR, HKCC or \\REGISTRY\\";
            return -1;
        }
    }
    if (n <= 0) { *Error = "registry path is not valid UTF-8 or too long"; return -1; }
    return n;
}

int SimCtxInit(SIM_CTX *Ctx)
{
    memset(Ctx, 0, sizeof(*Ctx));
    pthread_mutex_init(&Ctx->SidLock, NULL);
    snprintf(Ctx->DefaultSid, sizeof(Ctx->DefaultSid), "S-1-5-21-1000000000-1000000000-1000000000-1001");
    Ctx->Audit = 1;
    return 0;
}

void SimCtxDestroy(SIM_CTX *Ctx)
{
    int i;
    for (i = 0; i < SIM_SID_SLOTS; i++) free(Ctx->SidText[i]);
    pthread_mutex_destroy(&Ctx->SidLock);
}

int SimAddVolume(SIM_CTX *Ctx, const char *Spec)
{
    char d;
    int i;
    if (!Spec || !((Spec[0] >= 'A' && Spec[0] <= 'Z') || (Spec[0] >= 'a' && Spec[0] <= 'z')) || Spec[1] != ':' ||
        Spec[2] != '=' || strncasecmp(Spec + 3, "\\Device\\", 8) != 0 || strlen(Spec + 3) >= 96 ||
        strpbrk(Spec + 3, "\n=") != NULL) {
        return -1;
    }
    d = (char)(Spec[0] & ~0x20);
    for (i = 0; i < Ctx->VolumeCount; i++) {
        if (Ctx->Volumes[i].Drive == d) {
            snprintf(Ctx->Volumes[i].Device, sizeof(Ctx->Volumes[i].Device), "%s", Spec + 3);
            return 0;
        }
    }
    if (Ctx->VolumeCount >= SIM_MAX_VOLUMES) return -1;
    Ctx->Volumes[Ctx->VolumeCount].Drive = d;
    snprintf(Ctx->Volumes[Ctx->VolumeCount].Device, sizeof(Ctx->Volumes[0].Device), "%s", Spec + 3);
    Ctx->VolumeCount++;
    return 0;
}

void SimVolumesText(SIM_CTX *Ctx, char *Out, size_t Cap)
{
    size_t n = 0;
    int i;
    Out[0] = 0;
    for (i = 0; i < Ctx->VolumeCount && n < Cap; i++) {
        int w = snprintf(Out + n, Cap - n, "%c:=%s\n", Ctx->Volumes[i].Drive, Ctx->Volumes[i].Device);
        if (w < 0) break;
        n += (size_t)w;
    }
}

const char *SimSourceName(uint32_t Source)
{
    switch (Source) {
    case AGENTSH_SOURCE_CACHE: return "cache";
    case AGENTSH_SOURCE_BROKER: return "broker";
    case AGENTSH_SOURCE_FAILMODE: return "failmode";
    case AGENTSH_SOURCE_EXCLUDED: return "excluded";
    default: return "untracked";
    }
}

static int Lookup(const char *const *names, int count, const char *name)
{
    int i;
    if (!name) return -1;
    for (i = 0; i < count; i++) if (!strcasecmp(names[i], name)) return i + 1;
    return -1;
}

static const char *const kFileOps[] = { "create", "read", "write", "delete", "rename", "link" };
static const char *const kRegOps[] = { "create_key", "open_key", "set_value", "delete_key", "delete_value",
                                       "rename_key", "query_value" };

static void Error(JBUF *Out, const char *Msg)
{
    JbRaw(Out, "{\"error\":");
    JbStr(Out, Msg);
}

static void StatusError(JBUF *Out, const char *What, NTSTATUS st)
{
    char m[160];
    snprintf(m, sizeof m, "%s failed: NTSTATUS 0x%08X", What, (unsigned)st);
    Error(Out, m);
    JbFmt(Out, ",\"status\":\"0x%08X\"", (unsigned)st);
}

static int GetU32(const JSON_OBJ *o, const char *k, uint32_t *v, int required, JBUF *Out)
{
    int64_t x;
    int r = JsonInt(o, k, &x);
    if (r == 0) {
        if (required) {
            char m[96];
            snprintf(m, sizeof m, "missing integer field \"%s\"", k);
            Error(Out, m);
            return -1;
        }
        return 0;
    }
    if (r < 0 || x < 0 || x > 0xFFFFFFFFll) {
        char m[96];
        snprintf(m, sizeof m, "field \"%s\" must be an unsigned 32-bit integer", k);
        Error(Out, m);
        return -1;
    }
    *v = (uint32_t)x;
    return 1;
}

static int GetU64(const JSON_OBJ *o, const char *k, uint64_t *v, int required, JBUF *Out)
{
    int64_t x;
    int r = JsonInt(o, k, &x);
    if (r == 0) {
        if (required) {
            char m[96];
            snprintf(m, sizeof m, "missing field \"%s\" (integer or decimal string)", k);
            Error(Out, m);
            return -1;
        }
        return 0;
    }
    if (r < 0) {
        char m[96];
        snprintf(m, sizeof m, "field \"%s\" must be an unsigned 64-bit integer or decimal string", k);
        Error(Out, m);
        return -1;
    }
    *v = (uint64_t)x;
    return 1;
}

static NTSTATUS DispatchMsg(SIM_CTX *Ctx, const void *Msg, uint32_t Size)
{
    uint8_t out[256];
    UINT32 n = 0;
    return AgentshCoreDispatch(&Ctx->Core, Msg, Size, out, sizeof(out), &n);
}

/* Builds a message of FixedSize with one optional string at FieldOffset; dispatches it. */
static NTSTATUS DispatchWithString(SIM_CTX *Ctx, void *Fixed, uint32_t FixedSize, uint32_t FieldOffset,
                                   const uint16_t *Str, int Len)
{
    uint32_t total = FixedSize + (Len > 0 ? 2u * ((uint32_t)Len + 1u) : 0u);
    uint8_t *m = (uint8_t *)calloc(1, total);
    AGENTSH_MESSAGE_HEADER h;
    AGENTSH_STRING s;
    NTSTATUS st;
    if (!m) return STATUS_INSUFFICIENT_RESOURCES;
    memcpy(m, Fixed, FixedSize);
    memcpy(&h, m, sizeof(h));
    h.Size = total;
    memcpy(m, &h, sizeof(h));
    s.Offset = Len > 0 ? FixedSize : 0;
    s.Length = Len > 0 ? (uint32_t)Len : 0;
    memcpy(m + FieldOffset, &s, sizeof(s));
    if (Len > 0) memcpy(m + FixedSize, Str, (size_t)Len * 2);
    st = DispatchMsg(Ctx, m, total);
    free(m);
    return st;
}

static void MetricsJson(SIM_CTX *Ctx, JBUF *Out)
{
    AGENTSH_METRICS m;
    UINT64 sent, dropped, failed;
    UINT32 queued, pid = 0;
    uint64_t del, rep, late, to, con, dis, ref;
    AgentshCoreGetMetrics(&Ctx->Core, &m);
    AgentshCoreNotifyStats(&Ctx->Core, &sent, &dropped, &failed, &queued);
    SimPortStats(&Ctx->Port, &del, &rep, &late, &to, &con, &dis, &ref);
    (void)SimPortConnected(&Ctx->Port, &pid);
    JbFmt(Out,
          "\"metrics\":{\"CacheHitCount\":%llu,\"CacheMissCount\":%llu,\"CacheEvictionCount\":%llu,"
          "\"CacheExpiredCount\":%llu,\"CacheCollapsedCount\":%llu,\"FilePolicyQueries\":%llu,"
          "\"RegistryPolicyQueries\":%llu,\"PolicyQueryTimeouts\":%llu,\"PolicyQueryFailures\":%llu,"
          "\"AllowDecisions\":%llu,\"DenyDecisions\":%llu,\"PendingDecisions\":%llu,\"FailModeDecisions\":%llu,"
          "\"FailModeEntries\":%llu,\"ProbeCount\":%llu,\"ExcludedOperations\":%llu,\"CacheEntryCount\":%u,"
          "\"CacheCapacity\":%u,\"ActiveSessions\":%u,\"TrackedProcesses\":%u,\"ExcludedProcesses\":%u,"
          "\"ConsecutiveFailures\":%u,\"FailState\":%u,\"FailMode\":%u,\"ClientConnected\":%u},"
          "\"notifications\":{\"sent\":%llu,\"dropped\":%llu,\"failed\":%llu,\"queued\":%u},"
          "\"port\":{\"delivered\":%llu,\"replies\":%llu,\"late_replies\":%llu,\"timeouts\":%llu,\"connects\":%llu,"
          "\"disconnects\":%llu,\"refused\":%llu,\"client_pid\":%u}",
          (unsigned long long)m.CacheHitCount, (unsigned long long)m.CacheMissCount,
          (unsigned long long)m.CacheEvictionCount, (unsigned long long)m.CacheExpiredCount,
          (unsigned long long)m.CacheCollapsedCount, (unsigned long long)m.FilePolicyQueries,
          (unsigned long long)m.RegistryPolicyQueries, (unsigned long long)m.PolicyQueryTimeouts,
          (unsigned long long)m.PolicyQueryFailures, (unsigned long long)m.AllowDecisions,
          (unsigned long long)m.DenyDecisions, (unsigned long long)m.PendingDecisions,
          (unsigned long long)m.FailModeDecisions, (unsigned long long)m.FailModeEntries,
          (unsigned long long)m.ProbeCount, (unsigned long long)m.ExcludedOperations, m.CacheEntryCount,
          m.CacheCapacity, m.ActiveSessions, m.TrackedProcesses, m.ExcludedProcesses, m.ConsecutiveFailures,
          m.FailState, m.FailMode, m.ClientConnected, (unsigned long long)sent, (unsigned long long)dropped,
          (unsigned long long)failed, queued, (unsigned long long)del, (unsigned long long)rep,
          (unsigned long long)late, (unsigned long long)to, (unsigned long long)con, (unsigned long long)dis,
          (unsigned long long)ref, pid);
}

static void VerdictJson(JBUF *Out, const AGENTSH_VERDICT *v, uint64_t ns)
{
    JbFmt(Out, "{\"result\":\"%s\",\"source\":\"%s\",\"latency_us\":%llu,\"latency_ns\":%llu,\"session\":\"%llu\","
               "\"collapsed\":%s,\"pending\":%s",
          v->Decision == DECISION_ALLOW ? "allow" : "deny", SimSourceName(v->Source),
          (unsigned long long)(ns / 1000u), (unsigned long long)ns, (unsigned long long)v->SessionToken,
          v->Collapsed ? "true" : "false", v->RawDecision == DECISION_PENDING ? "true" : "false");
    if (v->QueryStatus != 0) JbFmt(Out, ",\"query_status\":\"0x%08X\"", (unsigned)v->QueryStatus);
    if (v->Reported) JbFmt(Out, ",\"reported\":true"); /* a MSG_DECISION_EVENT was queued */
}

/* The three strings of a request (NULL when empty), the core's decision, the result's fields. */
static void Decide(SIM_CTX *Ctx, AGENTSH_DECIDE_REQUEST *q, const uint16_t *s0, int n0, const uint16_t *s1, int n1,
                   const uint16_t *s2, int n2, AGENTSH_VERDICT *v, SIM_RESULT *R)
{
    uint64_t t0;
    if (q->ThreadId == 0) q->ThreadId = q->ProcessId + 1;
    q->Strings[0].Buffer = s0;
    q->Strings[0].Length = (UINT32)n0;
    q->Strings[1].Buffer = n1 ? s1 : NULL;
    q->Strings[1].Length = (UINT32)n1;
    q->Strings[2].Buffer = n2 ? s2 : NULL;
    q->Strings[2].Length = (UINT32)n2;
    t0 = NowNs();
    AgentshCoreDecide(&Ctx->Core, q, v);
    R->LatencyNs = NowNs() - t0;
    R->IsOp = 1;
    R->Kind = q->Kind;
    R->Decision = v->Decision;
    R->Source = v->Source;
}

static void DoFile(SIM_CTX *Ctx, const JSON_OBJ *o, JBUF *Out, SIM_RESULT *R)
{
    static __thread uint16_t path[SIM_PATH_CAP], dest[SIM_PATH_CAP], vol[256];
    AGENTSH_DECIDE_REQUEST q;
    AGENTSH_VERDICT v;
    const char *err = NULL;
    const char *p = JsonStr(o, "path"), *d = JsonStr(o, "dest");
    int n, dn = 0, vn = 0, op;
    memset(&q, 0, sizeof(q));
    q.Kind = AGENTSH_KIND_FILE;
    if (GetU32(o, "pid", &q.ProcessId, 1, Out) < 0 || GetU32(o, "tid", &q.ThreadId, 0, Out) < 0 ||
        GetU32(o, "disposition", &q.CreateDisposition, 0, Out) < 0 ||
        GetU32(o, "access", &q.DesiredAccess, 0, Out) < 0 || GetU32(o, "flags", &q.Flags, 0, Out) < 0) {
        return;
    }
    op = Lookup(kFileOps, 6, JsonStr(o, "op"));
    if (op < 0) { Error(Out, "op must be create|read|write|delete|rename|link"); return; }
    if (!p) { Error(Out, "missing string field \"path\""); return; }
    n = SimFilePathToNt(Ctx, p, path, SIM_PATH_CAP, vol, &vn, &err);
    if (n < 0) { Error(Out, err); return; }
    if ((op == FILE_OP_RENAME || op == FILE_OP_LINK) && !d) { Error(Out, "rename and link need \"dest\""); return; }
    if (d) {
        dn = SimFilePathToNt(Ctx, d, dest, SIM_PATH_CAP, NULL, NULL, &err);
        if (dn < 0) { Error(Out, err); return; }
    }
    if (n > (int)AGENTSH_MAX_STRING_CHARS || dn > (int)AGENTSH_MAX_STRING_CHARS) {
        Error(Out, "path longer than 32767 UTF-16 units");
        return;
    }
    if (JsonBool(o, "directory", 0)) q.Flags |= FILE_REQ_FLAG_DIRECTORY;
    if (JsonBool(o, "delete_on_close", 0)) q.Flags |= FILE_REQ_FLAG_DELETE_ON_CLOSE;
    if (JsonBool(o, "replace", 0)) q.Flags |= FILE_REQ_FLAG_REPLACE_IF_EXISTS;
    q.Operation = (uint32_t)op;
    Decide(Ctx, &q, path, n, dest, dn, vol, vn, &v, R);
    VerdictJson(Out, &v, R->LatencyNs);
}

static void DoRegistry(SIM_CTX *Ctx, const JSON_OBJ *o, JBUF *Out, SIM_RESULT *R)
{
    static __thread uint16_t key[SIM_PATH_CAP], val[SIM_PATH_CAP], nn[SIM_PATH_CAP];
    AGENTSH_DECIDE_REQUEST q;
    AGENTSH_VERDICT v;
    const char *err = NULL;
    const char *k = JsonStr(o, "key"), *vname = JsonStr(o, "value"), *newName = JsonStr(o, "new_name");
    int n, vn = 0, nl = 0, op;
    memset(&q, 0, sizeof(q));
    q.Kind = AGENTSH_KIND_REGISTRY;
    if (GetU32(o, "pid", &q.ProcessId, 1, Out) < 0 || GetU32(o, "tid", &q.ThreadId, 0, Out) < 0 ||
        GetU32(o, "type", &q.ValueType, 0, Out) < 0 || GetU32(o, "size", &q.DataSize, 0, Out) < 0) {
        return;
    }
    op = Lookup(kRegOps, 7, JsonStr(o, "op"));
    if (op < 0) {
        Error(Out, "op must be create_key|open_key|set_value|delete_key|delete_value|rename_key|query_value");
        return;
    }
    if (!k) { Error(Out, "missing string field \"key\""); return; }
    n = SimRegistryPathToNt(Ctx, q.ProcessId, k, key, SIM_PATH_CAP, &err);
    if (n < 0) { Error(Out, err); return; }
    if (vname) {
        vn = SimUtf8ToUtf16(vname, val, SIM_PATH_CAP);
        if (vn < 0) { Error(Out, "value name is not valid UTF-8"); return; }
    }
    if (newName) {
        nl = SimUtf8ToUtf16(newName, nn, SIM_PATH_CAP);
        if (nl < 0) { Error(Out, "new_name is not valid UTF-8"); return; }
    }
    if (op == REG_OP_RENAME_KEY && nl == 0) { Error(Out, "rename_key needs \"new_name\""); return; }
    if (n > (int)AGENTSH_MAX_STRING_CHARS || vn > (int)AGENTSH_MAX_STRING_CHARS || nl > (int)AGENTSH_MAX_STRING_CHARS) {
        Error(Out, "name longer than 32767 UTF-16 units");
        return;
    }
    q.Operation = (uint32_t)op;
    Decide(Ctx, &q, key, n, val, vn, nn, nl, &v, R);
    if (Ctx->Audit && v.Source != AGENTSH_SOURCE_UNTRACKED && v.Source != AGENTSH_SOURCE_EXCLUDED) {
        /* the post-operation callback: completed, or failed with access denied */
        (void)AgentshCoreAudit(&Ctx->Core, q.ProcessId, AGENTSH_KIND_REGISTRY, q.Operation,
                               v.Decision == DECISION_ALLOW ? 0 : (INT32)STATUS_ACCESS_DENIED, &q.Strings[0],
                               &q.Strings[1]);
    }
    VerdictJson(Out, &v, R->LatencyNs);
}

int SimExecute(SIM_CTX *Ctx, const char *Line, size_t Len, JBUF *Out, SIM_RESULT *Result)
{
    static __thread JSON_OBJ o;
    const char *err = NULL, *cmd;
    const JSON_FIELD *id;
    size_t mark;
    int shutdown = 0;
    SIM_RESULT dummy;
    if (!Result) Result = &dummy;
    memset(Result, 0, sizeof(*Result));
    if (JsonParse(Line, Len, &o, &err) != 0) {
        JbRaw(Out, "{\"error\":");
        JbStr(Out, err ? err : "malformed JSON");
        JbRaw(Out, "}");
        return 0;
    }
    mark = Out->Len;
    cmd = JsonStr(&o, "cmd");
    if (!cmd) {
        Error(Out, "missing string field \"cmd\"");
    } else if (!strcmp(cmd, "file")) {
        DoFile(Ctx, &o, Out, Result);
    } else if (!strcmp(cmd, "registry")) {
        DoRegistry(Ctx, &o, Out, Result);
    } else if (!strcmp(cmd, "spawn")) {
        uint32_t pid = 0, creator = 0, parent = 0;
        static __thread uint16_t img[SIM_PATH_CAP];
        int n = 0;
        const char *image = JsonStr(&o, "image"), *sid = JsonStr(&o, "sid");
        AGENTSH_USTR u = AGENTSH_USTR_EMPTY;
        UINT64 tok = 0;
        if (GetU32(&o, "pid", &pid, 1, Out) >= 0 && GetU32(&o, "creator", &creator, 1, Out) >= 0 &&
            GetU32(&o, "parent", &parent, 0, Out) >= 0) {
            if (image) n = SimFilePathToNt(Ctx, image, img, SIM_PATH_CAP, NULL, NULL, &err);
            if (pid == 0) {
                Error(Out, "pid must be non-zero");
            } else if (n < 0) {
                Error(Out, err);
            } else {
                char buf[128];
                u.Buffer = n ? img : NULL;
                u.Length = (UINT32)(n > (int)AGENTSH_MAX_STRING_CHARS ? (int)AGENTSH_MAX_STRING_CHARS : n);
                if (JsonGet(&o, "parent") == NULL) parent = creator;
                /* the child's user: explicit, else its creator's */
                SetSid(Ctx, pid, sid ? sid : SidFor(Ctx, creator, buf, sizeof(buf)));
                (void)AgentshCoreProcessCreated(&Ctx->Core, pid, creator, parent, &u);
                if (AgentshSessionLookupProcess(&Ctx->Core.Sessions, pid, &tok)) {
                    JbFmt(Out, "{\"ok\":true,\"tracked\":true,\"session\":\"%llu\"", (unsigned long long)tok);
                } else {
                    JbRaw(Out, "{\"ok\":true,\"tracked\":false");
                }
            }
        }
    } else if (!strcmp(cmd, "exit")) {
        uint32_t pid = 0;
        int64_t st = 0;
        if (GetU32(&o, "pid", &pid, 1, Out) >= 0) {
            if (JsonInt(&o, "status", &st) < 0) st = 0;
            JbFmt(Out, "{\"ok\":true,\"tracked\":%s",
                  AgentshCoreProcessTerminated(&Ctx->Core, pid, (INT32)st) ? "true" : "false");
        }
    } else if (!strcmp(cmd, "register")) {
        AGENTSH_SESSION_REGISTER r;
        static __thread uint16_t ws[SIM_PATH_CAP];
        const char *w = JsonStr(&o, "workspace");
        int n = 0;
        memset(&r, 0, sizeof(r));
        r.Header.Type = MSG_REGISTER_SESSION;
        r.Header.RequestId = 1;
        if (GetU64(&o, "token", &r.SessionToken, 1, Out) >= 0 && GetU32(&o, "root", &r.RootProcessId, 1, Out) >= 0) {
            if (w) n = SimFilePathToNt(Ctx, w, ws, SIM_PATH_CAP, NULL, NULL, &err);
            if (n < 0) {
                Error(Out, err);
            } else {
                NTSTATUS st = DispatchWithString(Ctx, &r, sizeof(r), AGENTSH_OFFSETOF(AGENTSH_SESSION_REGISTER, WorkspacePath),
                                                 ws, n);
                if (NT_SUCCESS(st)) JbRaw(Out, "{\"ok\":true"); else StatusError(Out, "register", st);
            }
        }
    } else if (!strcmp(cmd, "unregister")) {
        AGENTSH_SESSION_UNREGISTER u;
        memset(&u, 0, sizeof(u));
        u.Header.Type = MSG_UNREGISTER_SESSION;
        u.Header.Size = sizeof(u);
        if (GetU64(&o, "token", &u.SessionToken, 1, Out) >= 0) {
            NTSTATUS st = DispatchMsg(Ctx, &u, sizeof(u));
            if (NT_SUCCESS(st)) JbRaw(Out, "{\"ok\":true"); else StatusError(Out, "unregister", st);
        }
    } else if (!strcmp(cmd, "exclude")) {
        static const char *const actions[] = { "add", "remove", "replace" };
        const JSON_FIELD *pids = JsonGet(&o, "pids");
        int action = Lookup(actions, 3, JsonStr(&o, "action"));
        if (action < 0 || !pids || pids->Kind != JV_ARRAY) {
            Error(Out, "exclude needs \"action\": add|remove|replace and \"pids\": [..]");
        } else {
            uint8_t m[24 + 4 * JSON_MAX_ARRAY];
            AGENTSH_EXCLUDE_PROCESS e;
            int i;
            NTSTATUS st;
            memset(&e, 0, sizeof(e));
            e.Header.Type = MSG_EXCLUDE_PROCESS;
            e.Header.Size = 24u + 4u * (uint32_t)pids->ArrayCount;
            e.Action = (uint32_t)(action - 1);
            e.Count = (uint32_t)pids->ArrayCount;
            memcpy(m, &e, sizeof(e));
            for (i = 0; i < pids->ArrayCount; i++) {
                uint32_t v = (uint32_t)pids->ArrayInt[i];
                memcpy(m + 24 + 4 * i, &v, 4);
            }
            st = DispatchMsg(Ctx, m, e.Header.Size);
            if (NT_SUCCESS(st)) JbRaw(Out, "{\"ok\":true"); else StatusError(Out, "exclude", st);
        }
    } else if (!strcmp(cmd, "config")) {
        AGENTSH_CORE_CONFIG cur;
        AGENTSH_CONFIG c;
        const char *fm = JsonStr(&o, "fail_mode");
        AgentshCoreGetConfig(&Ctx->Core, &cur);
        memset(&c, 0, sizeof(c));
        c.Header.Type = MSG_SET_CONFIG;
        c.Header.Size = sizeof(c);
        c.FailMode = cur.FailMode;
        c.PolicyQueryTimeoutMs = cur.PolicyQueryTimeoutMs;
        c.MaxConsecutiveFailures = cur.MaxConsecutiveFailures;
        c.CacheMaxEntries = cur.CacheMaxEntries;
        c.CacheDefaultTTLMs = cur.CacheDefaultTTLMs;
        c.CacheMaxTTLMs = cur.CacheMaxTTLMs;
        c.ProbeIntervalMs = cur.ProbeIntervalMs;
        if (fm && !strcmp(fm, "open")) c.FailMode = FAIL_MODE_OPEN;
        else if (fm && !strcmp(fm, "closed")) c.FailMode = FAIL_MODE_CLOSED;
        else if (fm) c.FailMode = 99; /* rejected below */
        if (GetU32(&o, "timeout_ms", &c.PolicyQueryTimeoutMs, 0, Out) >= 0 &&
            GetU32(&o, "max_failures", &c.MaxConsecutiveFailures, 0, Out) >= 0 &&
            GetU32(&o, "cache_max_entries", &c.CacheMaxEntries, 0, Out) >= 0 &&
            GetU32(&o, "cache_default_ttl_ms", &c.CacheDefaultTTLMs, 0, Out) >= 0 &&
            GetU32(&o, "cache_max_ttl_ms", &c.CacheMaxTTLMs, 0, Out) >= 0 &&
            GetU32(&o, "probe_interval_ms", &c.ProbeIntervalMs, 0, Out) >= 0) {
            NTSTATUS st = DispatchMsg(Ctx, &c, sizeof(c));
            if (NT_SUCCESS(st)) {
                JbFmt(Out, "{\"ok\":true,\"config\":{\"fail_mode\":\"%s\",\"timeout_ms\":%u,\"max_failures\":%u,"
                           "\"cache_max_entries\":%u,\"cache_default_ttl_ms\":%u,\"cache_max_ttl_ms\":%u,"
                           "\"probe_interval_ms\":%u}",
                      c.FailMode == FAIL_MODE_CLOSED ? "closed" : "open", c.PolicyQueryTimeoutMs,
                      c.MaxConsecutiveFailures, c.CacheMaxEntries, c.CacheDefaultTTLMs, c.CacheMaxTTLMs,
                      c.ProbeIntervalMs);
            } else {
                StatusError(Out, "config", st);
            }
        }
    } else if (!strcmp(cmd, "invalidate")) {
        static const char *const scopes[] = { "all", "session", "prefix" };
        static const char *const kinds[] = { "file", "registry" };
        static __thread uint16_t pre[SIM_PATH_CAP];
        AGENTSH_CACHE_UPDATE u;
        int scope = Lookup(scopes, 3, JsonStr(&o, "scope"));
        const char *kind = JsonStr(&o, "kind"), *prefix = JsonStr(&o, "prefix");
        int n = 0;
        memset(&u, 0, sizeof(u));
        u.Header.Type = MSG_UPDATE_CACHE;
        if (scope < 0) {
            Error(Out, "invalidate needs \"scope\": all|session|prefix");
        } else if (GetU64(&o, "token", &u.SessionToken, 0, Out) >= 0) {
            u.Scope = (uint32_t)(scope - 1);
            u.Kind = kind ? (uint32_t)(Lookup(kinds, 2, kind) < 0 ? 99 : Lookup(kinds, 2, kind)) : 0;
            if (prefix) {
                /* a prefix is in kernel form (\Device\..., \REGISTRY\...) or user form */
                if (u.Kind == AGENTSH_KIND_REGISTRY) n = SimRegistryPathToNt(Ctx, 0, prefix, pre, SIM_PATH_CAP, &err);
                else if (!strncasecmp(prefix, "\\REGISTRY", 9)) n = SimUtf8ToUtf16(prefix, pre, SIM_PATH_CAP);
                else n = SimFilePathToNt(Ctx, prefix, pre, SIM_PATH_CAP, NULL, NULL, &err);
            }
            if (n < 0) {
                Error(Out, err ? err : "bad prefix");
            } else {
                NTSTATUS st = DispatchWithString(Ctx, &u, sizeof(u), AGENTSH_OFFSETOF(AGENTSH_CACHE_UPDATE, PathPrefix),
                                                 pre, n);
                if (NT_SUCCESS(st)) JbRaw(Out, "{\"ok\":true"); else StatusError(Out, "invalidate", st);
            }
        }
    } else if (!strcmp(cmd, "metrics")) {
        JbRaw(Out, "{");
        MetricsJson(Ctx, Out);
    } else if (!strcmp(cmd, "volumes")) {
        int i;
        JbRaw(Out, "{\"volumes\":[");
        for (i = 0; i < Ctx->VolumeCount; i++) {
            JbFmt(Out, "%s{\"drive\":\"%c:\",\"device\":", i ? "," : "", Ctx->Volumes[i].Drive);
            JbStr(Out, Ctx->Volumes[i].Device);
            JbRaw(Out, "}");
        }
        JbRaw(Out, "]");
    } else if (!strcmp(cmd, "status")) {
        uint32_t pid = 0;
        UINT32 state, consecutive;
        int connected = SimPortConnected(&Ctx->Port, &pid);
        AgentshFailSnapshot(&Ctx->Core.Fail, &state, &consecutive);
        JbFmt(Out, "{\"client_connected\":%s,\"client_pid\":%u,\"fail_state\":\"%s\",\"consecutive_failures\":%u",
              connected ? "true" : "false", pid, state == FAIL_STATE_FAILING ? "failing" : "normal", consecutive);
    } else if (!strcmp(cmd, "ping")) {
        JbRaw(Out, "{\"ok\":true");
    } else if (!strcmp(cmd, "sleep")) {
        uint32_t ms = 0;
        if (GetU32(&o, "ms", &ms, 1, Out) >= 0) {
            struct timespec ts = { (time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L };
            nanosleep(&ts, NULL);
            JbRaw(Out, "{\"ok\":true");
        }
    } else if (!strcmp(cmd, "shutdown")) {
        JbRaw(Out, "{\"ok\":true");
        shutdown = 1;
    } else {
        Error(Out, "unknown cmd (file|registry|spawn|exit|register|unregister|exclude|config|invalidate|metrics|"
                   "volumes|status|ping|sleep|shutdown)");
    }
    if (Out->Len == mark) Error(Out, "internal: no response");
    id = JsonGet(&o, "id");
    if (id && (id->Kind == JV_STR || id->Kind == JV_NUM) && id->RawLen < 128) {
        char raw[160];
        memcpy(raw, id->Raw, id->RawLen);
        raw[id->RawLen] = 0;
        JbFmt(Out, ",\"id\":%s", raw);
    }
    JbRaw(Out, "}");
    return shutdown;
}
