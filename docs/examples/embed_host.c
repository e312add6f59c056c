/* morsel inside a hand-written epoll loop: the host watches morsel's one
 * fd beside its own (a 2 ms timerfd), sleeps for morsel's timeout, and
 * calls mo_embed_run() after each wake-up. morsel runs a cooperative task
 * and a job on its pool meanwhile; the job's completion wakes the host. */
#include <morsel.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

static unsigned long long i, sum;
static int done;

static int step(mo_task_t *task, void *arg)
{
    (void)task, (void)arg;
    for (unsigned long long end = i + 100000; i < end && i < 30000000; i++) sum += i;
    return i < 30000000 ? MO_CONTINUE : MO_DONE;
}

static int job(void *arg, void **valuep, mo_dtor_fn *dtorp, mo_failure_t **failurep)
{
    (void)valuep, (void)dtorp, (void)failurep, (void)arg;
    usleep(20000); /* something that blocks, on a worker thread */
    return 0;
}

static void finished(mo_result_t *r, void *arg)
{
    (void)r, (void)arg;
    done++;
}

int main(void)
{
    mo_loop_t *loop;
    mo_task_t *task;
    mo_deferred_t *d;
    int ep = epoll_create1(EPOLL_CLOEXEC), tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec every = {{0, 2000000}, {0, 2000000}};
    if (ep < 0 || tfd < 0 || timerfd_settime(tfd, 0, &every, NULL) != 0) return 1;
    if (mo_loop_new(&loop, 0) != 0 || mo_embed_attach(loop, NULL, NULL) != 0) return 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = tfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    ev.data.fd = mo_embed_fd(loop); /* the same fd for the loop's lifetime */
    epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev);

    if (mo_cooperate(loop, step, NULL, NULL, &task) != 0) return 1;
    mo_deferred_t *td = mo_task_deferred(task);
    mo_deferred_add_callback(td, finished, NULL);
    if (mo_deferred_call_on_pool(NULL, loop, job, NULL, &d) != 0) return 1;
    mo_deferred_add_callback(d, finished, NULL);

    unsigned long long ticks = 0;
    while (done < 2) {
        int ms;
        mo_embed_timeout_ms(loop, &ms); /* right before sleeping: 0 while the task runs */
        struct epoll_event got[4];
        int n = epoll_wait(ep, got, 4, ms);
        for (int k = 0; k < n; k++) {
            uint64_t expirations;
            if (got[k].data.fd == tfd && read(tfd, &expirations, 8) == 8) ticks += expirations;
        }
        mo_embed_run(loop); /* at most one slice plus one call; harmless when idle */
    }
    printf("sum = %llu; job done; the host's timer kept ticking: %s\n", sum,
           ticks > 0 ? "yes" : "no");
    mo_deferred_unref(td);
    mo_deferred_unref(d);
    mo_task_release(task);
    mo_embed_detach(loop, NULL);
    mo_loop_free(loop); /* after detaching; it would detach too */
    close(tfd), close(ep);
    return 0;
}
