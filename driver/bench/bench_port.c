/* bench_port.c - round trip through the simulator's emulated filter port to a trivial responder
 * written against the fltlib ABI (libfltsim.so): agentsh-sim serve is started as a child process,
 * this program is the port client (answers ALLOW, no caching) and drives uncached file decisions
 * through the control socket. port_roundtrip_us = the time AgentshCoreDecide spends on a miss:
 * request built, FltSendMessage emulation, FilterGetMessage in this process, FilterReplyMessage,
 * reply validated. Prints one JSON object on stdout. Usage: bench-port PATH/TO/agentsh-sim [N] */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "protocol.h"

int32_t FilterConnectCommunicationPort(const uint16_t *, uint32_t, const void *, uint16_t, void *, void **);
int32_t FilterGetMessage(void *, void *, uint32_t, void *);
int32_t FilterReplyMessage(void *, void *, uint32_t);
int32_t FilterClose(void *);

static void *gPort;
static volatile int gStop;

static void *Responder(void *arg)
{
    static __thread uint8_t buf[16 + 65536];
    (void)arg;
    while (!gStop) {
        FILTER_MESSAGE_HEADER fh;
        AGENTSH_MESSAGE_HEADER h;
        AGENTSH_REPLY_MESSAGE r;
        if (FilterGetMessage(gPort, buf, sizeof buf, NULL) != 0) { if (gStop) break; usleep(1000); continue; }
        memcpy(&fh, buf, 16);
        if (fh.ReplyLength == 0) continue;
        memcpy(&h, buf + 16, 16);
        memset(&r, 0, sizeof r);
        r.ReplyHeader.MessageId = fh.MessageId;
        r.Response.Header.Type = MSG_POLICY_RESPONSE;
        r.Response.Header.Size = sizeof r.Response;
        r.Response.Header.RequestId = h.RequestId;
        r.Response.Decision = DECISION_ALLOW;
        r.Response.CacheTTLMs = AGENTSH_TTL_NO_CACHE;
        (void)FilterReplyMessage(gPort, &r, sizeof r);
    }
    return NULL;
}

static int Dial(const char *path)
{
    struct sockaddr_un a;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    return fd;
}

static char gLine[65536];

static const char *Ask(int fd, const char *req)
{
    size_t n = 0;
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) return "";
    while (n < sizeof gLine - 1) {
        ssize_t r = recv(fd, gLine + n, 1, 0);
        if (r <= 0) break;
        if (gLine[n] == '\n') break;
        n++;
    }
    gLine[n] = 0;
    return gLine;
}

static int Cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *sim = argc > 1 ? argv[1] : "build/agentsh-sim";
    int n = argc > 2 ? atoi(argv[2]) : 5000, i, fd = -1, got = 0;
    char port[108], ctl[108], req[512];
    double *lat = malloc(sizeof(double) * (size_t)n);
    pid_t child;
    pthread_t t[2];
    AGENTSH_CONNECT_CONTEXT c = { AGENTSH_CONNECT_MAGIC, AGENTSH_PROTOCOL_VERSION, (uint32_t)getpid(), 0 };
    static const uint16_t name[] = { '\\', 'A', 'g', 'e', 'n', 't', 's', 'h', 'P', 'o', 'r', 't', 0 };

    snprintf(port, sizeof port, "/tmp/agentsh-bench-%d-port.sock", (int)getpid());
    snprintf(ctl, sizeof ctl, "/tmp/agentsh-bench-%d-ctl.sock", (int)getpid());
    child = fork();
    if (child == 0) {
        int devnull = open("/dev/null", 1);
        dup2(devnull, 2);
        execl(sim, sim, "serve", "--port-socket", port, "--control-socket", ctl, "--no-audit", (char *)NULL);
        _exit(127);
    }
    for (i = 0; i < 200 && (fd = Dial(ctl)) < 0; i++) usleep(10000);
    if (fd < 0) { fprintf(stderr, "bench-port: simulator did not start\n"); kill(child, SIGKILL); return 1; }
    setenv("AGENTSH_SIM_SOCKET", port, 1);
    if (FilterConnectCommunicationPort(name, 0, &c, sizeof c, NULL, &gPort) != 0) {
        fprintf(stderr, "bench-port: connect failed\n");
        kill(child, SIGKILL);
        return 1;
    }
    pthread_create(&t[0], NULL, Responder, NULL);
    pthread_create(&t[1], NULL, Responder, NULL);
    Ask(fd, "{\"cmd\":\"register\",\"token\":1,\"root\":100}\n");
    for (i = 0; i < n + 500; i++) {
        const char *r, *p;
        snprintf(req, sizeof req, "{\"cmd\":\"file\",\"pid\":100,\"op\":\"write\",\"path\":\"C:\\\\bench\\\\f%d.c\"}\n", i);
        r = Ask(fd, req);
        p = strstr(r, "\"latency_ns\":");
        if (!p || !strstr(r, "\"source\":\"broker\"")) { fprintf(stderr, "bench-port: unexpected %s\n", r); continue; }
        if (i >= 500) lat[got++] = atof(p + 13) / 1000.0; /* the first 500 warm up */
    }
    Ask(fd, "{\"cmd\":\"shutdown\"}\n");
    gStop = 1;
    FilterClose(gPort);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    waitpid(child, NULL, 0);
    if (got == 0) return 1;
    qsort(lat, (size_t)got, sizeof(double), Cmp);
    fprintf(stderr, "bench-port: %d uncached decisions through the emulated port: p50 %.1f us  p99 %.1f us  max %.1f us\n",
            got, lat[got / 2], lat[(size_t)(got * 0.99)], lat[got - 1]);
    printf("{\"port_roundtrip_us_p50\":%.1f,\"port_roundtrip_us_p99\":%.1f}\n", lat[got / 2], lat[(size_t)(got * 0.99)]);
    free(lat);
    return 0;
}
