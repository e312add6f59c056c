/* A hand-written epoll loop that runs a morsel loop inside it
 * (morsel/embed.h): the host has its own timer (a timerfd ticking every
 * 10 ms) and sleeps in epoll_wait(); morsel adds one fd to that epoll set
 * and one timeout, and runs a long cooperative task in 1 ms slices in
 * between. The host's ticks keep coming while the task runs.
 *
 *   usage: example_embed_epoll [N]   (sums 1..N cooperatively; default 4e8) */
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "morsel.h"

struct sum {
    unsigned long i, n, total;
    int done;
};

/* One step of the task: a million additions, then back to the loop. */
static int sum_step(mo_task_t *task, void *arg)
{
    (void)task;
    struct sum *s = arg;
    for (unsigned long end = s->i + 1000000; s->i < end && s->i <= s->n; s->i++) s->total += s->i;
    if (s->i <= s->n) return MO_CONTINUE;
    s->done = 1;
    return MO_DONE;
}

int main(int argc, char **argv)
{
    struct sum s = {1, argc > 1 ? strtoul(argv[1], NULL, 10) : 400000000UL, 0, 0};
    mo_loop_t *loop;
    if (mo_loop_new(&loop, 0) != 0) return 1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec every = {{0, 10000000}, {0, 10000000}};
    if (ep < 0 || tfd < 0 || timerfd_settime(tfd, 0, &every, NULL) != 0) return 1;
    /* The host's own fd, and morsel's. */
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = tfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    ev.data.fd = mo_embed_fd(loop);
    epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev);
    if (mo_embed_attach(loop, NULL, NULL) != 0 || mo_cooperate(loop, sum_step, &s, NULL, NULL))
        return 1;

    unsigned long ticks = 0, ticks_during = 0;
    int64_t start = mo_hrtime();
    while (!s.done) {
        int ms;
        mo_embed_timeout_ms(loop, &ms); /* right before sleeping: 0 while the task runs */
        struct epoll_event got[8];
        int n = epoll_wait(ep, got, 8, ms);
        for (int i = 0; i < n; i++) {
            if (got[i].data.fd != tfd) continue; /* morsel's: the run below handles it */
            uint64_t expirations;
            if (read(tfd, &expirations, sizeof expirations) == sizeof expirations)
                ticks += expirations, ticks_during++;
        }
        mo_embed_run(loop); /* one slice at most, then the host again */
    }
    printf("sum = %lu in %.0f ms; the host's 10 ms timer ran %lu times meanwhile (%lu ticks)\n",
           s.total, (mo_hrtime() - start) / 1e6, ticks_during, ticks);
    mo_embed_detach(loop, NULL);
    mo_loop_free(loop);
    close(tfd);
    close(ep);
    return 0;
}
