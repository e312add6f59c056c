/* offload: a stand-in for the worker pool. See offload.h. */
#include "offload.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

enum { OFFLOAD_NICE = 10 };

struct offload_job {
    struct offload_job *next;
    offload_work_fn work;
    mo_call_fn done;
    void *arg;
    struct offload *owner;
};

struct offload {
    mo_loop_t *loop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct offload_job *head, **tail;
    bool stopping;
    unsigned nthreads;
    pthread_t threads[];
};

static void offload_job_done(mo_loop_t *loop, void *arg)
{
    struct offload_job *j = arg;
    mo_call_fn done = j->done;
    void *a = j->arg;
    free(j);
    mo_loop_release(loop);
    done(loop, a);
}

static void *offload_worker(void *arg)
{
    struct offload *o = arg;
    /* Below the loop thread, so that when the loop wakes on a busy machine
     * the scheduler runs it at once instead of after a worker's time slice
     * (Linux applies nice per thread). Best effort: failing changes nothing. */
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), OFFLOAD_NICE);
    pthread_mutex_lock(&o->mu);
    for (;;) {
        while (!o->head && !o->stopping) pthread_cond_wait(&o->cv, &o->mu);
        struct offload_job *j = o->head;
        if (!j) break;
        o->head = j->next;
        if (!o->head) o->tail = &o->head;
        pthread_mutex_unlock(&o->mu);
        j->work(j->arg);
        /* Only fails once the loop is closed, which offload_free() precedes. */
        (void)mo_call_from_thread(o->loop, offload_job_done, j);
        pthread_mutex_lock(&o->mu);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

int offload_new(struct offload **op, mo_loop_t *loop, unsigned nthreads)
{
    if (!nthreads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = n > 0 ? (unsigned)n : 1;
    }
    struct offload *o = calloc(1, sizeof *o + nthreads * sizeof(pthread_t));
    if (!o) return -ENOMEM;
    o->loop = loop;
    o->tail = &o->head;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    for (; o->nthreads < nthreads; o->nthreads++) {
        int err = pthread_create(&o->threads[o->nthreads], NULL, offload_worker, o);
        if (err) {
            offload_free(o);
            return -err;
        }
    }
    *op = o;
    return 0;
}

unsigned offload_threads(const struct offload *o)
{
    return o->nthreads;
}

int offload_submit(struct offload *o, offload_work_fn work, mo_call_fn done, void *arg)
{
    struct offload_job *j = malloc(sizeof *j);
    if (!j) return -ENOMEM;
    *j = (struct offload_job){NULL, work, done, arg, o};
    int err = mo_loop_hold(o->loop);
    if (err) {
        free(j);
        return err;
    }
    pthread_mutex_lock(&o->mu);
    *o->tail = j;
    o->tail = &j->next;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    return 0;
}

void offload_free(struct offload *o)
{
    if (!o) return;
    pthread_mutex_lock(&o->mu);
    o->stopping = true;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
    for (unsigned i = 0; i < o->nthreads; i++) pthread_join(o->threads[i], NULL);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o);
}
