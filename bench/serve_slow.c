/* `morsel serve` streaming a big factorial to a client that reads slowly,
 * while 16 other connections ping it:
 *   - one connection asks for `factorial N` (default 10,000,000: 65.7 MB of
 *     digits) and reads at RATE bytes/s (default 1 MiB/s) with a 64 KiB
 *     receive buffer;
 *   - 16 connections each send `ping` every 10 ms (staggered) and time the
 *     round trip to `pong`;
 *   - the server's resident memory (VmRSS) is sampled every 100 ms.
 * Reported: the ping round trips (p50, p99, max); the most bytes the
 * server queued for the slow connection (its log line's max_queued)
 * against the high watermark plus one text chunk (64 KiB + 400,001 bytes);
 * and the server's peak resident memory (VmHWM) against that of
 * `morsel factorial N > /dev/null`, the same computation with nobody
 * slow to wait for: what backpressure saves is the difference between
 * buffering the digits (65.7 MB for N = 10^7) and holding the conversion.
 * Usage: bench_serve_slow MORSEL [N] [RATE] [-- extra serve options]. */
#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PINGERS   16
#define PING_GAP  10000000LL /* ns between two pings of one connection */
#define SAMPLE_NS 100000000LL

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static long rss_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    size_t flen = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, flen) && sscanf(line + flen, ": %ld", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

static pid_t start_server(const char *morsel, char **extra, int nextra, int *port, int *errfd)
{
    int out[2], err[2];
    if (pipe(out) || pipe(err)) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        const char *argv[40] = {morsel, "serve"};
        int argc = 2;
        for (int i = 0; i < nextra && argc < 38; i++) argv[argc++] = extra[i];
        argv[argc] = NULL;
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]), close(err[0]);
        execv(morsel, (char **)argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    char line[256];
    size_t n = 0;
    while (n + 1 < sizeof line && read(out[0], line + n, 1) == 1 && line[n] != '\n') n++;
    line[n] = '\0';
    const char *colon = strrchr(line, ':');
    if (strncmp(line, "listening on 127.0.0.1:", 23) != 0 || !colon) die("server did not start");
    *port = atoi(colon + 1);
    *errfd = err[0];
    close(out[0]);
    return pid;
}

static int connect_to(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) die("connect");
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The peak resident memory of `morsel factorial N > /dev/null`, in kB. */
static long factorial_alone_kb(const char *morsel, unsigned long n)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        char arg[32];
        snprintf(arg, sizeof arg, "%lu", n);
        execl(morsel, morsel, "factorial", arg, (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    return ru.ru_maxrss;
}

struct pinger {
    int64_t next, sent_at;
    int fd;
    bool waiting;
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_serve_slow MORSEL [N] [RATE] [-- serve options]\n");
        return 2;
    }
    const char *morsel = argv[1];
    int extra_at = argc, npos = argc; /* positional arguments end at "--" */
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--")) {
            extra_at = i + 1;
            npos = i;
            break;
        }
    unsigned long n = npos > 2 ? strtoul(argv[2], NULL, 10) : 10000000;
    double rate = npos > 3 ? atof(argv[3]) : 1048576.0;
    if (n == 0 || rate <= 0) {
        fprintf(stderr, "bench_serve_slow: N and RATE must be positive\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int port, errfd;
    pid_t pid = start_server(morsel, argv + extra_at, argc - extra_at, &port, &errfd);
    usleep(200000);
    long rss_idle = rss_kb(pid, "VmRSS");

    int ep = epoll_create1(0);
    int slow = connect_to(port, 65536);
    struct pinger pg[PINGERS];
    int64_t t0 = bench_now();
    for (int i = 0; i < PINGERS; i++) {
        pg[i] = (struct pinger){.next = t0 + 200000000LL + i * (PING_GAP / PINGERS),
                                .fd = connect_to(port, 0)};
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, pg[i].fd, &ev);
    }
    char req[64];
    snprintf(req, sizeof req, "factorial %lu\n", n);
    if (send(slow, req, strlen(req), 0) < 0) die("send");
    size_t cap = 1 << 22, nrtt = 0;
    int64_t *rtt = malloc(cap * sizeof *rtt);
    uint64_t got = 0;
    int64_t first_byte = 0, next_sample = t0, done_at = 0;
    long rss_max = 0;
    static char buf[16384];
    while (!done_at) {
        int64_t now = bench_now();
        /* Read at the rate: what the budget allows by now. */
        double allowed = first_byte ? (now - first_byte) / 1e9 * rate + 16384 : 16384;
        while ((double)got < allowed) {
            ssize_t r = recv(slow, buf, sizeof buf, 0);
            if (r <= 0) break;
            if (!first_byte) first_byte = bench_now();
            got += (uint64_t)r;
            if (buf[r - 1] == '\n') {
                done_at = bench_now();
                break;
            }
        }
        if (now >= next_sample) {
            long kb = rss_kb(pid, "VmRSS");
            if (kb > rss_max) rss_max = kb;
            next_sample = now + SAMPLE_NS;
        }
        for (int i = 0; i < PINGERS; i++) {
            if (pg[i].waiting || now < pg[i].next) continue;
            if (send(pg[i].fd, "ping\n", 5, 0) != 5) die("ping");
            pg[i].sent_at = now;
            pg[i].waiting = true;
            pg[i].next += PING_GAP;
            if (pg[i].next < now) pg[i].next = now + PING_GAP;
        }
        struct epoll_event evs[PINGERS];
        int k = epoll_wait(ep, evs, PINGERS, 1);
        int64_t t = bench_now();
        for (int e = 0; e < k; e++) {
            struct pinger *p = &pg[evs[e].data.u32];
            char pong[64];
            ssize_t r = recv(p->fd, pong, sizeof pong, 0);
            if (r <= 0) die("pong");
            if (p->waiting && nrtt < cap) rtt[nrtt++] = t - p->sent_at;
            p->waiting = false;
        }
    }
    long hwm = rss_kb(pid, "VmHWM");
    /* The server's own view: the lateness of its 1 ms heartbeat. */
    char stats[256] = "";
    fcntl(pg[0].fd, F_SETFL, 0);
    if (send(pg[0].fd, "stats\n", 6, 0) == 6) {
        ssize_t r = recv(pg[0].fd, stats, sizeof stats - 1, 0);
        stats[r > 0 ? r : 0] = '\0';
    }
    close(slow);
    for (int i = 0; i < PINGERS; i++) close(pg[i].fd);
    usleep(200000);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    static char log[1 << 16];
    ssize_t ln = read(errfd, log, sizeof log - 1);
    log[ln > 0 ? ln : 0] = '\0';
    const char *mq = strstr(log, "conn=1 ");
    mq = mq ? strstr(mq, "max_queued=") : NULL;
    long queued = mq ? atol(mq + 11) : -1;
    long alone = factorial_alone_kb(morsel, n);
    /* What else the server said (its watchdog's reports, say). */
    for (char *l = log, *e; *l; l = e ? e + 1 : l + strlen(l)) {
        e = strchr(l, '\n');
        int len = e ? (int)(e - l) : (int)strlen(l);
        if (strncmp(l, "serve: conn=", 12) != 0 && strncmp(l, "serve: SIG", 10) != 0)
            printf("server: %.*s\n", len, l);
    }

    qsort(rtt, nrtt, sizeof *rtt, cmp_i64);
    printf(
        "## morsel serve: factorial %lu to a client reading %.0f B/s, %d pingers every %lld ms\n",
        n, rate, PINGERS, PING_GAP / 1000000);
    printf("digits+newline received: %llu in %.1f s (first byte after %.2f s)\n",
           (unsigned long long)got, (done_at - t0) / 1e9, (first_byte - t0) / 1e9);
    size_t i50 = nrtt / 2, i99 = nrtt * 99 / 100, imax = nrtt ? nrtt - 1 : 0;
    printf("ping round trips: %zu, p50 %.1f us, p99 %.1f us, max %.1f us\n", nrtt,
           nrtt ? (double)rtt[i50] / 1e3 : 0, nrtt ? (double)rtt[i99] / 1e3 : 0,
           nrtt ? (double)rtt[imax] / 1e3 : 0);
    printf("server's heartbeat: %s", stats);
    printf("queued for the slow client at most: %ld B (high mark + one chunk: %d B)\n", queued,
           65536 + 400001);
    printf("server RSS: idle %ld kB, peak %ld kB sampled, VmHWM %ld kB\n", rss_idle, rss_max, hwm);
    printf("morsel factorial %lu > /dev/null alone: peak RSS %ld kB\n", n, alone);
    free(rtt);
    return 0;
}
