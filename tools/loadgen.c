/* loadgen: the load client on a morsel loop (see loadgen.h). Raw
 * non-blocking sockets, one fd watcher per direction, a delayed call per
 * ping connection for its timetable, and one supervisor call every TICK
 * that ends the phase (duration, work done, timeout, cancel). */
#include "loadgen.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_CONNS   16
#define DEFAULT_PERIOD  MO_MSEC(10)
#define DEFAULT_CONNECT MO_SEC(5)
#define DEFAULT_TIMEOUT MO_SEC(120)
#define DEFAULT_REPORT  MO_MSEC(100)
#define TICK            MO_MSEC(5)
#define OUT_CAP         8192
#define READ_SIZE       65536
#define RECENT          MO_SEC(1)
#define RECENT_MAX      8192

struct loadgen;

/* A connection: a ping connection (job == NULL) or a work request's. */
struct conn {
    struct loadgen *lg;
    int fd;
    mo_io_id rio, wio;
    char out[OUT_CAP]; /* bytes write() did not take yet */
    size_t outlen;
    /* ping: the due times of the unanswered pings, oldest first (a ring) */
    int64_t *due;
    unsigned head, count;
    int64_t next;
    mo_call_id timer;
    char pong[8];
    size_t ponglen;
    /* work */
    struct loadgen_job *job;
    char *line; /* the answer line being assembled (walk, stats, errors) */
    size_t linelen;
    size_t matched; /* factorial: digits that matched so far */
    bool error_line;
    struct loadgen_walk_sum sum;
};

struct loadgen {
    mo_loop_t *loop;
    struct loadgen_opts opts;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int64_t epoch;
    struct conn *pings;
    unsigned nping;
    unsigned connecting;
    int connect_err;
    bool broken;
    /* the phase running */
    const struct loadgen_phase *phase;
    struct loadgen_result *res;
    struct conn jobs[LOADGEN_MAX_JOBS];
    int64_t start, deadline, next_report;
    bool sending, stats_started, stopped;
    mo_call_id tick;
    size_t cap;
    int64_t recent[RECENT_MAX];
    char buf[READ_SIZE];
};

static int64_t since(const struct loadgen *lg, int64_t t)
{
    return t - lg->epoch;
}

/* ---- ending a phase ---- */

static void stop_loop(struct loadgen *lg)
{
    if (lg->stopped) return;
    lg->stopped = true;
    mo_loop_stop(lg->loop);
}

/* The first error wins; `fatal` errors leave the ping connections broken. */
static void fail(struct loadgen *lg, int err, bool fatal, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(struct loadgen *lg, int err, bool fatal, const char *fmt, ...)
{
    struct loadgen_result *res = lg->res;
    if (res && res->status == 0) {
        res->status = err;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(res->error, sizeof res->error, fmt, ap);
        va_end(ap);
    }
    if (fatal) {
        lg->broken = true;
        stop_loop(lg);
    }
}

static void watch_stop(struct loadgen *lg, mo_io_id *id)
{
    if (*id) mo_io_stop(lg->loop, *id);
    *id = 0;
}

static void conn_close(struct conn *c)
{
    watch_stop(c->lg, &c->rio);
    watch_stop(c->lg, &c->wio);
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

/* ---- sockets ---- */

static int parse_addr(struct loadgen *lg)
{
    const char *host = lg->opts.host ? lg->opts.host : "127.0.0.1";
    struct sockaddr_in *in4 = (struct sockaddr_in *)&lg->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&lg->addr;
    if (lg->opts.port == 0 || lg->opts.port > 65535) return MO_EINVAL;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)lg->opts.port);
        lg->addrlen = sizeof *in4;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)lg->opts.port);
        lg->addrlen = sizeof *in6;
    } else {
        return MO_EINVAL;
    }
    return 0;
}

/* Starts a non-blocking connect; *pending is set when it is in progress. */
static int conn_connect(struct conn *c, bool *pending)
{
    struct loadgen *lg = c->lg;
    *pending = false;
    c->fd = socket(lg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return -errno;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&lg->addr, lg->addrlen) == 0) return 0;
    if (errno != EINPROGRESS) return -errno;
    *pending = true;
    return 0;
}

static int connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
    return -err;
}

static void conn_writable(mo_loop_t *loop, int fd, unsigned events, void *arg);

/* Sends bytes now, keeping what the socket does not take for when it is
 * writable. */
static int conn_send(struct conn *c, const char *p, size_t n)
{
    if (c->outlen == 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) return -errno;
        if (w > 0) p += w, n -= (size_t)w;
        if (n == 0) return 0;
    }
    if (c->outlen + n > OUT_CAP) return MO_ENOSPC; /* the server stopped reading */
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
    if (c->wio) return 0;
    return mo_io_start(c->lg->loop, c->fd, MO_WRITABLE, conn_writable, c, &c->wio);
}

static void conn_failed(struct conn *c, int err, const char *what);

static void conn_writable(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop, (void)events;
    struct conn *c = arg;
    ssize_t w = send(fd, c->out, c->outlen, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN) conn_failed(c, -errno, "send");
        return;
    }
    memmove(c->out, c->out + w, c->outlen - (size_t)w);
    c->outlen -= (size_t)w;
    if (c->outlen == 0) watch_stop(c->lg, &c->wio);
}

/* ---- ping connections ---- */

static void record(struct loadgen *lg, int64_t due, int64_t rtt)
{
    struct loadgen_result *res = lg->res;
    if (res->nsamples == lg->cap) {
        size_t cap = lg->cap ? 2 * lg->cap : 4096;
        struct loadgen_sample *s = realloc(res->samples, cap * sizeof *s);
        if (!s) {
            fail(lg, MO_ENOMEM, true, "out of memory for round trips");
            return;
        }
        res->samples = s;
        lg->cap = cap;
    }
    res->samples[res->nsamples++] = (struct loadgen_sample){since(lg, due), rtt};
}

static void pong(struct conn *c, int64_t now)
{
    struct loadgen *lg = c->lg;
    if (c->ponglen != 4 || memcmp(c->pong, "pong", 4) != 0) {
        fail(lg, MO_EIO, true, "ping answered with '%.*s'", (int)c->ponglen, c->pong);
        return;
    }
    if (c->count == 0) {
        fail(lg, MO_EIO, true, "pong without a ping");
        return;
    }
    int64_t due = c->due[c->head];
    c->head = (c->head + 1) % LOADGEN_MAX_OUTSTANDING;
    c->count--;
    if (lg->res) record(lg, due, now - due);
}

static void ping_readable(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop, (void)events;
    struct conn *c = arg;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    int64_t now = mo_hrtime();
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        conn_failed(c, n == 0 ? MO_EPIPE : -errno, "ping connection");
        return;
    }
    for (ssize_t i = 0; i < n && !c->lg->stopped; i++) {
        if (buf[i] == '\n') {
            pong(c, now);
            c->ponglen = 0;
        } else if (c->ponglen < sizeof c->pong) {
            c->pong[c->ponglen++] = buf[i];
        }
    }
}

static void ping_due(mo_loop_t *loop, void *arg)
{
    struct conn *c = arg;
    struct loadgen *lg = c->lg;
    c->timer = 0;
    if (!lg->sending) return;
    int64_t late = mo_hrtime() - c->next;
    if (late > lg->res->client_late_max) lg->res->client_late_max = late;
    if (c->count == LOADGEN_MAX_OUTSTANDING) {
        fail(lg, MO_ETIMEDOUT, true, "%d pings unanswered on one connection",
             LOADGEN_MAX_OUTSTANDING);
        return;
    }
    c->due[(c->head + c->count++) % LOADGEN_MAX_OUTSTANDING] = c->next;
    int err = conn_send(c, "ping\n", 5);
    if (err) {
        conn_failed(c, err, "ping");
        return;
    }
    lg->res->pings_sent++;
    c->next += lg->opts.ping_period;
    if (mo_call_at(loop, c->next, ping_due, c, &c->timer) != 0)
        fail(lg, MO_ENOMEM, true, "cannot schedule a ping");
}

static void pings_stop(struct loadgen *lg)
{
    lg->sending = false;
    for (unsigned i = 0; i < lg->nping; i++) {
        if (lg->pings[i].timer) mo_call_cancel(lg->loop, lg->pings[i].timer);
        lg->pings[i].timer = 0;
    }
}

static bool pings_answered(const struct loadgen *lg)
{
    for (unsigned i = 0; i < lg->nping; i++)
        if (lg->pings[i].count) return false;
    return true;
}

/* ---- work connections ---- */

static void job_finish(struct conn *c, bool ok)
{
    struct loadgen_job *job = c->job;
    job->done = true;
    job->ok = ok;
    job->last_byte = since(c->lg, mo_hrtime());
    conn_close(c);
    free(c->line);
    c->line = NULL;
}

static const char *job_name(const struct loadgen_job *job)
{
    return job->kind == LOADGEN_FACTORIAL ? "factorial"
           : job->kind == LOADGEN_WALK    ? "walk"
                                          : "stats";
}

/* A wrong or missing answer: the request fails, the phase goes on. */
static void job_fail(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void job_fail(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->job->error, sizeof c->job->error, fmt, ap);
    va_end(ap);
    fail(c->lg, MO_EIO, false, "%s: %s", job_name(c->job), c->job->error);
    job_finish(c, false);
}

static void conn_failed(struct conn *c, int err, const char *what)
{
    if (c->job) {
        job_fail(c, "%s: %s", what, err == MO_EPIPE ? "connection closed" : strerror(-err));
        return;
    }
    watch_stop(c->lg, &c->rio); /* level-triggered: it would fire again */
    fail(c->lg, err, true, "%s: %s", what,
         err == MO_EPIPE ? "the server closed the connection" : strerror(-err));
}

/* Appends to the line being assembled; false (and the job failed) when it
 * grows past LOADGEN_MAX_LINE. */
static bool line_add(struct conn *c, const char *p, size_t n)
{
    if (c->linelen + n > LOADGEN_MAX_LINE) {
        job_fail(c, "an answer line longer than %d bytes", LOADGEN_MAX_LINE);
        return false;
    }
    memcpy(c->line + c->linelen, p, n);
    c->linelen += n;
    return true;
}

static bool is_error(const char *line, size_t len)
{
    return len >= 7 && memcmp(line, "error: ", 7) == 0;
}

/* The stats answer's line. */
static void stats_line(struct conn *c, const char *line, size_t len)
{
    struct loadgen_job *job = c->job;
    if (len < 4 || memcmp(line, "lag ", 4) != 0 || len >= sizeof job->answer) {
        job_fail(c, "stats answered '%.*s'", (int)(len > 200 ? 200 : len), line);
        return;
    }
    memcpy(job->answer, line, len);
    job->answer[len] = '\0';
    job_finish(c, true);
}

/* The empty line that ends a walk's answer: the paths must be the expected
 * set. */
static void walk_end(struct conn *c)
{
    const struct loadgen_walk_sum *want = &c->lg->phase->walk_expect;
    if (c->sum.count != want->count || c->sum.hash != want->hash)
        job_fail(c, "%llu paths (hash %016llx), expected %llu (hash %016llx)",
                 (unsigned long long)c->sum.count, (unsigned long long)c->sum.hash,
                 (unsigned long long)want->count, (unsigned long long)want->hash);
    else
        job_finish(c, true);
}

/* One complete line of an answer; false when it ended the job. */
static bool job_line(struct conn *c, const char *line, size_t len)
{
    struct loadgen_job *job = c->job;
    if (is_error(line, len)) {
        job_fail(c, "the server answered '%.*s'", (int)(len > 200 ? 200 : len), line);
    } else if (job->kind == LOADGEN_STATS) {
        stats_line(c, line, len);
    } else if (job->kind == LOADGEN_FACTORIAL) {
        job_fail(c, "answered '%.*s'", (int)(len > 40 ? 40 : len), line);
    } else if (len == 0) {
        walk_end(c);
    } else {
        loadgen_walk_sum_line(&c->sum, line, len);
        job->paths++;
        return true;
    }
    return false;
}

/* Splits bytes into lines; a line wholly inside `p` is used in place. */
static void lines_feed(struct conn *c, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        if (!nl) {
            line_add(c, p, n);
            return;
        }
        size_t len = (size_t)(nl - p);
        bool more;
        if (c->linelen == 0) {
            more = job_line(c, p, len);
        } else {
            if (!line_add(c, p, len)) return;
            more = job_line(c, c->line, c->linelen);
        }
        if (!more) return;
        c->linelen = 0;
        p += len + 1;
        n -= len + 1;
    }
}

int loadgen_factorial_check(const char *want, size_t len, size_t *matched, const char *p, size_t n,
                            char *err, size_t errsize)
{
    size_t left = len - *matched;
    size_t m = n < left ? n : left;
    if (memcmp(p, want + *matched, m) != 0) {
        size_t k = 0;
        while (p[k] == want[*matched + k]) k++;
        snprintf(err, errsize, "digit %zu of %zu is '%c', expected '%c'", *matched + k + 1, len,
                 p[k], want[*matched + k]);
        return LOADGEN_CHECK_WRONG;
    }
    *matched += m;
    if (m == n) return LOADGEN_CHECK_MORE;
    if (p[m] != '\n' || n > m + 1) {
        snprintf(err, errsize, "the answer goes on after the %zu expected digits", len);
        return LOADGEN_CHECK_WRONG;
    }
    return LOADGEN_CHECK_DONE;
}

static void factorial_feed(struct conn *c, const char *p, size_t n)
{
    const struct loadgen_phase *ph = c->lg->phase;
    if (c->job->bytes == n && n > 0 && p[0] == 'e') c->error_line = true; /* first bytes */
    if (c->error_line) {
        lines_feed(c, p, n); /* an error line: job_line() reports it */
        return;
    }
    char why[160];
    int r = loadgen_factorial_check(ph->factorial_digits, ph->factorial_len, &c->matched, p, n, why,
                                    sizeof why);
    if (r == LOADGEN_CHECK_WRONG)
        job_fail(c, "%s", why);
    else if (r == LOADGEN_CHECK_DONE)
        job_finish(c, true);
}

static void job_readable(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop, (void)events;
    struct conn *c = arg;
    char *buf = c->lg->buf;
    ssize_t n = read(fd, buf, READ_SIZE);
    if (n < 0) {
        if (errno != EAGAIN) conn_failed(c, -errno, "read");
        return;
    }
    if (n == 0) {
        job_fail(c, "the server closed the connection after %llu bytes",
                 (unsigned long long)c->job->bytes);
        return;
    }
    if (c->job->first_byte == 0) c->job->first_byte = since(c->lg, mo_hrtime());
    c->job->bytes += (uint64_t)n;
    if (c->job->kind == LOADGEN_FACTORIAL)
        factorial_feed(c, buf, (size_t)n);
    else
        lines_feed(c, buf, (size_t)n);
}

static void job_send(struct conn *c)
{
    const struct loadgen_phase *ph = c->lg->phase;
    char req[4200];
    int len;
    if (c->job->kind == LOADGEN_FACTORIAL)
        len = snprintf(req, sizeof req, "factorial %lu\n", ph->factorial_n);
    else if (c->job->kind == LOADGEN_WALK)
        len = snprintf(req, sizeof req, "walk %s\n", ph->walk_dir);
    else
        len = snprintf(req, sizeof req, "stats\n");
    c->job->sent = since(c->lg, mo_hrtime());
    int err = conn_send(c, req, (size_t)len);
    if (!err) err = mo_io_start(c->lg->loop, c->fd, MO_READABLE, job_readable, c, &c->rio);
    if (err) conn_failed(c, err, "send");
}

static void job_connected(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop, (void)events;
    struct conn *c = arg;
    watch_stop(c->lg, &c->wio);
    int err = connect_result(fd);
    if (err)
        conn_failed(c, err, "connect");
    else
        job_send(c);
}

static void job_start(struct loadgen *lg, int kind)
{
    struct loadgen_result *res = lg->res;
    struct conn *c = &lg->jobs[res->njobs];
    struct loadgen_job *job = &res->jobs[res->njobs++];
    *c = (struct conn){.lg = lg, .fd = -1, .job = job};
    job->kind = kind;
    bool pending = false;
    c->line = malloc(LOADGEN_MAX_LINE);
    int err = c->line ? conn_connect(c, &pending) : MO_ENOMEM;
    if (!err && pending) err = mo_io_start(lg->loop, c->fd, MO_WRITABLE, job_connected, c, &c->wio);
    if (err)
        conn_failed(c, err, "connect");
    else if (!pending)
        job_send(c);
}

static bool work_done(const struct loadgen *lg, bool with_stats)
{
    for (unsigned i = 0; i < lg->res->njobs; i++)
        if (!lg->res->jobs[i].done && (with_stats || lg->res->jobs[i].kind != LOADGEN_STATS))
            return false;
    return true;
}

/* ---- the supervisor ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void summarize_values(int64_t *v, size_t n, struct loadgen_summary *out)
{
    *out = (struct loadgen_summary){n, 0, 0, 0};
    if (n == 0) return;
    qsort(v, n, sizeof *v, cmp_i64);
    out->p50 = v[(n * 50 + 99) / 100 - 1];
    out->p99 = v[(n * 99 + 99) / 100 - 1];
    out->max = v[n - 1];
}

static void report(struct loadgen *lg, int64_t now)
{
    const struct loadgen_phase *ph = lg->phase;
    const struct loadgen_result *res = lg->res;
    size_t n = 0;
    int64_t from = since(lg, now - RECENT);
    for (size_t i = res->nsamples; i > 0 && n < RECENT_MAX; i--)
        if (res->samples[i - 1].sched >= from) lg->recent[n++] = res->samples[i - 1].rtt;
    struct loadgen_progress p = {
        now - lg->start, res->nsamples, {0, 0, 0, 0}, res->jobs, res->njobs};
    summarize_values(lg->recent, n, &p.recent);
    ph->progress(&p, ph->progress_arg);
}

static const char *unfinished(const struct loadgen *lg)
{
    for (unsigned i = 0; i < lg->res->njobs; i++)
        if (!lg->res->jobs[i].done) return job_name(&lg->res->jobs[i]);
    return pings_answered(lg) ? "nothing" : "pongs";
}

static void supervise(mo_loop_t *loop, void *arg)
{
    struct loadgen *lg = arg;
    const struct loadgen_phase *ph = lg->phase;
    int64_t now = mo_hrtime();
    lg->tick = 0;
    if (lg->opts.cancel && atomic_load(lg->opts.cancel)) {
        fail(lg, MO_ECANCELED, true, "cancelled");
        return;
    }
    if (now >= lg->deadline) {
        fail(lg, MO_ETIMEDOUT, true, "timed out waiting for %s", unfinished(lg));
        return;
    }
    if (ph->progress && now >= lg->next_report) {
        report(lg, now);
        lg->next_report = now + (ph->progress_period ? ph->progress_period : DEFAULT_REPORT);
    }
    if (lg->sending && now - lg->start >= ph->duration && work_done(lg, false)) pings_stop(lg);
    if (!lg->sending && pings_answered(lg)) {
        if (ph->ask_stats && !lg->stats_started) {
            lg->stats_started = true;
            job_start(lg, LOADGEN_STATS);
        } else if (work_done(lg, true)) {
            stop_loop(lg);
            return;
        }
    }
    if (mo_call_later(loop, TICK, supervise, lg, &lg->tick) != 0)
        fail(lg, MO_ENOMEM, true, "cannot schedule the supervisor");
}

/* ---- phases ---- */

static int phase_check(const struct loadgen_phase *ph)
{
    if (ph->duration < 0 || ph->timeout < 0 || ph->progress_period < 0) return MO_EINVAL;
    if (ph->factorial_jobs + ph->walk_jobs + 1 > LOADGEN_MAX_JOBS) return MO_EINVAL;
    if (ph->factorial_jobs && (!ph->factorial_digits || ph->factorial_len == 0)) return MO_EINVAL;
    if (ph->walk_jobs && (!ph->walk_dir || !*ph->walk_dir || strlen(ph->walk_dir) > 4090 ||
                          strchr(ph->walk_dir, '\n')))
        return MO_EINVAL;
    return 0;
}

static void phase_begin(struct loadgen *lg)
{
    const struct loadgen_phase *ph = lg->phase;
    int64_t now = mo_hrtime();
    lg->start = now;
    lg->deadline = now + (ph->timeout ? ph->timeout : DEFAULT_TIMEOUT);
    lg->next_report = now;
    lg->sending = true;
    lg->res->start = since(lg, now);
    for (unsigned i = 0; i < lg->nping && !lg->stopped; i++) {
        struct conn *c = &lg->pings[i];
        c->next = now + lg->opts.ping_period * i / lg->nping;
        if (mo_call_at(lg->loop, c->next, ping_due, c, &c->timer) != 0)
            fail(lg, MO_ENOMEM, true, "cannot schedule a ping");
    }
    for (unsigned i = 0; i < ph->factorial_jobs && !lg->stopped; i++)
        job_start(lg, LOADGEN_FACTORIAL);
    for (unsigned i = 0; i < ph->walk_jobs && !lg->stopped; i++) job_start(lg, LOADGEN_WALK);
    if (!lg->stopped && mo_call_later(lg->loop, TICK, supervise, lg, &lg->tick) != 0)
        fail(lg, MO_ENOMEM, true, "cannot schedule the supervisor");
}

/* The work window and the summaries, once the loop has stopped. */
static int phase_end(struct loadgen *lg)
{
    struct loadgen_result *res = lg->res;
    res->end = since(lg, mo_hrtime());
    res->work_start = res->work_end = 0;
    for (unsigned i = 0; i < res->njobs; i++) {
        const struct loadgen_job *job = &res->jobs[i];
        if (job->kind == LOADGEN_STATS || !job->sent) continue;
        if (!res->work_start || job->sent < res->work_start) res->work_start = job->sent;
        int64_t end = job->done ? job->last_byte : res->end;
        if (end > res->work_end) res->work_end = end;
    }
    int err = loadgen_summarize(res->samples, res->nsamples, res->start, res->end, &res->ping);
    if (!err && res->work_start)
        err = loadgen_summarize(res->samples, res->nsamples, res->work_start, res->work_end,
                                &res->ping_work);
    return err;
}

static void phase_cleanup(struct loadgen *lg)
{
    pings_stop(lg);
    if (lg->tick) mo_call_cancel(lg->loop, lg->tick);
    lg->tick = 0;
    for (unsigned i = 0; i < lg->res->njobs; i++) {
        struct conn *c = &lg->jobs[i];
        conn_close(c);
        free(c->line);
        c->line = NULL;
    }
}

int loadgen_run(struct loadgen *lg, const struct loadgen_phase *phase, struct loadgen_result *res)
{
    if (!res) return MO_EINVAL;
    memset(res, 0, sizeof *res);
    if (!lg || !phase || phase_check(phase) != 0) return res->status = MO_EINVAL;
    if (lg->broken) {
        snprintf(res->error, sizeof res->error, "an earlier phase broke the connections");
        return res->status = MO_ESHUTDOWN;
    }
    lg->phase = phase;
    lg->res = res;
    lg->cap = 0;
    lg->stopped = lg->stats_started = false;
    phase_begin(lg);
    if (!lg->stopped) {
        int err = mo_loop_run(lg->loop, MO_RUN_DEFAULT);
        if (err) fail(lg, err, true, "the loop: %s", mo_strerror(err));
    }
    phase_cleanup(lg);
    int err = phase_end(lg);
    if (err) fail(lg, err, false, "cannot summarise: %s", mo_strerror(err));
    lg->phase = NULL;
    lg->res = NULL;
    return res->status;
}

void loadgen_result_free(struct loadgen_result *res)
{
    if (!res) return;
    free(res->samples);
    res->samples = NULL;
    res->nsamples = 0;
}

int loadgen_summarize(const struct loadgen_sample *samples, size_t n, int64_t from, int64_t to,
                      struct loadgen_summary *out)
{
    int64_t *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) return MO_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (samples[i].sched >= from && samples[i].sched <= to) v[m++] = samples[i].rtt;
    summarize_values(v, m, out);
    free(v);
    return 0;
}

/* ---- making and freeing ---- */

static void ping_connected(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct conn *c = arg;
    watch_stop(c->lg, &c->wio);
    int err = connect_result(fd);
    if (!err) err = mo_io_start(loop, fd, MO_READABLE, ping_readable, c, &c->rio);
    if (err) {
        c->lg->connecting = 0;
        c->lg->connect_err = err;
        mo_loop_stop(loop);
    } else if (--c->lg->connecting == 0) {
        mo_loop_stop(loop);
    }
}

static void connect_timeout(mo_loop_t *loop, void *arg)
{
    struct loadgen *lg = arg;
    lg->broken = true;
    mo_loop_stop(loop);
}

static int pings_connect(struct loadgen *lg)
{
    for (unsigned i = 0; i < lg->nping; i++) {
        struct conn *c = &lg->pings[i];
        bool pending;
        int err = conn_connect(c, &pending);
        if (!err && pending) {
            lg->connecting++;
            err = mo_io_start(lg->loop, c->fd, MO_WRITABLE, ping_connected, c, &c->wio);
        } else if (!err) {
            err = mo_io_start(lg->loop, c->fd, MO_READABLE, ping_readable, c, &c->rio);
        }
        if (err) return err;
    }
    if (lg->connecting == 0) return 0;
    mo_call_id timer;
    int err = mo_call_later(lg->loop, lg->opts.connect_timeout, connect_timeout, lg, &timer);
    if (!err) err = mo_loop_run(lg->loop, MO_RUN_DEFAULT);
    mo_call_cancel(lg->loop, timer);
    if (!err) err = lg->connect_err;
    if (!err && lg->broken) err = MO_ETIMEDOUT;
    return err;
}

static int loadgen_init(struct loadgen *lg, const struct loadgen_opts *opts)
{
    lg->opts = *opts;
    if (!lg->opts.ping_conns) lg->opts.ping_conns = DEFAULT_CONNS;
    if (!lg->opts.ping_period) lg->opts.ping_period = DEFAULT_PERIOD;
    if (!lg->opts.connect_timeout) lg->opts.connect_timeout = DEFAULT_CONNECT;
    if (lg->opts.ping_period < 0 || lg->opts.connect_timeout < 0 || lg->opts.ping_conns > 4096)
        return MO_EINVAL;
    int err = parse_addr(lg);
    if (err) return err;
    lg->epoch = mo_hrtime();
    lg->nping = lg->opts.ping_conns;
    lg->pings = calloc(lg->nping, sizeof *lg->pings);
    if (!lg->pings) return MO_ENOMEM;
    for (unsigned i = 0; i < lg->nping; i++) {
        lg->pings[i] = (struct conn){.lg = lg, .fd = -1};
        lg->pings[i].due = malloc(LOADGEN_MAX_OUTSTANDING * sizeof(int64_t));
        if (!lg->pings[i].due) return MO_ENOMEM;
    }
    err = mo_loop_new(&lg->loop, 0);
    if (err) return err;
    mo_loop_set_timer_slack(lg->loop, 0); /* pings leave on time, not batched */
    return pings_connect(lg);
}

int loadgen_new(struct loadgen **lgp, const struct loadgen_opts *opts)
{
    if (!lgp || !opts) return MO_EINVAL;
    struct loadgen *lg = calloc(1, sizeof *lg);
    if (!lg) return MO_ENOMEM;
    int err = loadgen_init(lg, opts);
    if (err) {
        loadgen_free(lg);
        return err;
    }
    *lgp = lg;
    return 0;
}

void loadgen_free(struct loadgen *lg)
{
    if (!lg) return;
    for (unsigned i = 0; lg->pings && i < lg->nping; i++) {
        if (lg->loop) conn_close(&lg->pings[i]);
        free(lg->pings[i].due);
    }
    free(lg->pings);
    mo_loop_free(lg->loop);
    free(lg);
}

/* ---- on a thread of its own ---- */

struct loadgen_thread {
    pthread_t tid;
    struct loadgen_opts opts;
    const struct loadgen_phase *phases;
    size_t nphases;
    struct loadgen_result *results;
    int status;
    void (*finished)(void *arg);
    void *finished_arg;
};

static void *thread_main(void *arg)
{
    struct loadgen_thread *t = arg;
    struct loadgen *lg = NULL;
    for (size_t i = 0; i < t->nphases; i++) memset(&t->results[i], 0, sizeof t->results[i]);
    t->status = loadgen_new(&lg, &t->opts);
    size_t i = 0;
    while (!t->status && i < t->nphases) {
        int err = loadgen_run(lg, &t->phases[i], &t->results[i]);
        i++;
        if (err && !t->status) t->status = err;
        if (err && err != MO_EIO) break;
    }
    for (; lg && i < t->nphases; i++) {
        t->results[i].status = MO_ECANCELED;
        snprintf(t->results[i].error, sizeof t->results[i].error,
                 "not run: an earlier phase failed");
    }
    for (i = 0; !lg && i < t->nphases; i++) { /* loadgen_new() failed */
        t->results[i].status = t->status;
        snprintf(t->results[i].error, sizeof t->results[i].error, "cannot connect: %s",
                 t->status == MO_ETIMEDOUT ? "timed out" : strerror(-t->status));
    }
    loadgen_free(lg);
    if (t->finished) t->finished(t->finished_arg);
    return NULL;
}

int loadgen_spawn(struct loadgen_thread **tp, const struct loadgen_opts *opts,
                  const struct loadgen_phase *phases, size_t nphases,
                  struct loadgen_result *results)
{
    return loadgen_spawn_notify(tp, opts, phases, nphases, results, NULL, NULL);
}

int loadgen_spawn_notify(struct loadgen_thread **tp, const struct loadgen_opts *opts,
                         const struct loadgen_phase *phases, size_t nphases,
                         struct loadgen_result *results, void (*finished)(void *arg), void *arg)
{
    if (!tp || !opts || (nphases && (!phases || !results))) return MO_EINVAL;
    struct loadgen_thread *t = calloc(1, sizeof *t);
    if (!t) return MO_ENOMEM;
    *t = (struct loadgen_thread){.opts = *opts,
                                 .phases = phases,
                                 .nphases = nphases,
                                 .results = results,
                                 .finished = finished,
                                 .finished_arg = arg};
    int err = pthread_create(&t->tid, NULL, thread_main, t);
    if (err) {
        free(t);
        return -err;
    }
    *tp = t;
    return 0;
}

int loadgen_join(struct loadgen_thread *t)
{
    if (!t) return MO_EINVAL;
    pthread_join(t->tid, NULL);
    int status = t->status;
    free(t);
    return status;
}
