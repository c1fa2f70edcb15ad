/*
 * cpu-swap PERIOD_MS PIDS_A PIDS_B - the otel bench's fair share of the machine (broker/bench/otel-bench.ts).
 *
 * Two systems measured side by side each get one of the first two CPUs this program may use, and
 * every PERIOD_MS they trade them: every thread of the processes in PIDS_A (a comma list) is pinned
 * to one CPU and every thread of PIDS_B to the other. On a VM the two virtual CPUs run at different
 * speeds from moment to moment; pinned for good, one system would get the faster one, and left to
 * the scheduler the systems' shares of the two drift apart for tens of seconds. Trading them often
 * gives both the same machine. Threads started in between are pinned at the next trade (a new
 * thread inherits its creator's CPU meanwhile). Ends when its parent does, or on SIGTERM.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int PinAll(const char *list, int cpu)
{
    char buf[1024], path[64];
    cpu_set_t set;
    int pinned = 0;
    snprintf(buf, sizeof buf, "%s", list);
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        snprintf(path, sizeof path, "/proc/%d/task", atoi(p));
        DIR *d = opendir(path);
        if (!d) continue; /* the process has ended */
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            int tid = atoi(e->d_name);
            if (tid > 0 && sched_setaffinity(tid, sizeof set, &set) == 0) pinned++;
        }
        closedir(d);
    }
    return pinned;
}

int main(int argc, char **argv)
{
    cpu_set_t mine;
    int cpus[2], n = 0;
    long ms = argc == 4 ? atol(argv[1]) : 0;
    pid_t parent = getppid();
    if (ms <= 0) {
        fprintf(stderr, "usage: cpu-swap PERIOD_MS PID,PID,... PID,PID,...\n");
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
    for (int turn = 0; getppid() == parent; turn ^= 1) {
        if (PinAll(argv[2], cpus[turn]) + PinAll(argv[3], cpus[turn ^ 1]) == 0) return 0; /* all ended */
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}
