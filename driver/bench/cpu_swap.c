/*
 * cpu-swap PERIOD_MS PIDS_A PIDS_B [PIDS_NEUTRAL] - the otel bench's fair share of the machine
 * (broker/bench/otel-bench.ts).
 *
 * Two systems measured side by side each get one of the first two CPUs this program may use, and
 * they trade them by turns: every thread of the processes in PIDS_A (a comma list) is pinned to one
 * CPU and every thread of PIDS_B to the other. On a VM the two virtual CPUs run at different
 * speeds from moment to moment; pinned for good, one system would get the faster one, and left to
 * the scheduler the systems' shares of the two drift apart for tens of seconds. Trading them often
 * gives both the same machine. Threads started in between are pinned at the next trade (a new
 * thread inherits its creator's CPU meanwhile). Ends when its parent does, or on SIGTERM or SIGINT,
 * giving PIDS_NEUTRAL back every CPU it had itself.
 *
 * PIDS_NEUTRAL (the bench itself: the OTLP receiver standing in for a collector, the scraper) stay
 * on the first CPU, so whatever they do is charged to both systems equally: each system has that
 * CPU half of the time. Left to the scheduler, the receiver could run where the exporting system
 * woke it, its work charged to that system alone. A fleet's collector runs on another machine.
 * For that half to be half, what they do must not keep step with the trades (an exporter's timer of
 * one second would meet a trade every 250 ms at the same point of the cycle): each pair of turns
 * lasts a random 1 to 3 PERIOD_MS, the same for both turns of the pair, so each system still has
 * each CPU for exactly the same time.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void Stop(int sig)
{
    (void)sig;
    stopping = 1;
}

/* Every thread of the processes in `list` (a comma list of pids) to the CPUs of `set`. */
static int PinAll(const char *list, const cpu_set_t *set)
{
    char buf[1024], path[64];
    int pinned = 0;
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        snprintf(path, sizeof path, "/proc/%d/task", atoi(p));
        DIR *d = opendir(path);
        if (!d) continue; /* the process has ended */
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            int tid = atoi(e->d_name);
            if (tid > 0 && sched_setaffinity(tid, sizeof *set, set) == 0) pinned++;
        }
        closedir(d);
    }
    return pinned;
}

int main(int argc, char **argv)
{
    cpu_set_t mine;
    int cpus[2], n = 0;
    long ms = argc == 4 || argc == 5 ? atol(argv[1]) : 0;
    const char *neutral = argc == 5 ? argv[4] : "";
    pid_t parent = getppid();
    if (ms <= 0) {
        fprintf(stderr, "usage: cpu-swap PERIOD_MS PID,PID,... PID,PID,... [PID,PID,...]\n");
        return 2;
    }
    if (sched_getaffinity(0, sizeof mine, &mine) != 0) {
        perror("cpu-swap: sched_getaffinity");
        return 1;
    }
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &mine)) cpus[n++] = c;
    if (n < 2) {
        fprintf(stderr, "cpu-swap: needs two CPUs, has %d\n", n);
        return 1;
    }
    cpu_set_t on[2];
    for (int i = 0; i < 2; i++) {
        CPU_ZERO(&on[i]);
        CPU_SET(cpus[i], &on[i]);
    }
    struct sigaction sa = {0};
    sa.sa_handler = Stop; /* no SA_RESTART: nanosleep returns at once */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    unsigned long long rng = (unsigned long long)now.tv_nsec * 2654435761ULL ^ (unsigned long long)getpid();
    long turn_ms = ms;
    for (int turn = 0; !stopping && getppid() == parent; turn ^= 1) {
        PinAll(neutral, &on[0]);
        if (PinAll(argv[2], &on[turn]) + PinAll(argv[3], &on[turn ^ 1]) == 0) break; /* all ended */
        if (turn == 0) { /* a new pair of turns: PERIOD_MS/2 to 3 PERIOD_MS/2 each (xorshift64) */
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            turn_ms = ms / 2 + (long)(rng % (unsigned long long)(ms + 1));
        }
        struct timespec ts = {turn_ms / 1000, (turn_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    PinAll(neutral, &mine);
    return 0;
}
