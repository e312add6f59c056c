/* The load client (tools/loadgen.c), the instrument of `morsel demo` and
 * bench/e2e: against a fake server on a thread of its own (plain blocking
 * sockets and poll) that can stall, lie or go silent, it must measure every
 * late pong from its scheduled time, catch every wrong answer, and end
 * every phase by its bounds. MO_TEST_LABEL_THREADS */
#include "test.h"

#include "loadgen.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <gmp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a fake server ---- */

enum fake_mode {
    FAKE_OK,
    FAKE_STALL,
    FAKE_WRONG_DIGIT,
    FAKE_WRONG_WALK,
    FAKE_ERROR,
    FAKE_SILENT,
    FAKE_CLOSE_PINGS
};

#define FAKE_CONNS 40
#define FAKE_BUF   8192

struct fake_conn {
    int fd;
    char buf[FAKE_BUF];
    size_t len;
    unsigned pings;
};

struct fake {
    enum fake_mode mode;
    int stall_ms;
    int lfd;
    unsigned port;
    pthread_t tid;
    atomic_int stop;
    struct fake_conn conns[FAKE_CONNS];
};

static void put(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w, n -= (size_t)w;
    }
}

static void puts_fd(int fd, const char *s)
{
    put(fd, s, strlen(s));
}

static _Thread_local struct {
    char *buf;
    size_t len, cap;
} walk_out;

static int walk_line(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    size_t len = strlen(path);
    if (walk_out.len + 2 * len + 2 > walk_out.cap) {
        walk_out.cap = 2 * (walk_out.len + 2 * len + 2);
        walk_out.buf = realloc(walk_out.buf, walk_out.cap);
    }
    walk_out.len += loadgen_escape(path, len, walk_out.buf + walk_out.len);
    walk_out.buf[walk_out.len++] = '\n';
    return 0;
}

static void fake_walk(struct fake *f, int fd, const char *dir)
{
    walk_out.len = 0;
    nftw(dir, walk_line, 16, FTW_PHYS);
    if (f->mode == FAKE_WRONG_WALK) { /* drop the last path */
        walk_out.len--;
        while (walk_out.len > 0 && walk_out.buf[walk_out.len - 1] != '\n') walk_out.len--;
    }
    put(fd, walk_out.buf, walk_out.len);
    puts_fd(fd, "\n");
}

static void fake_factorial(struct fake *f, int fd, unsigned long n)
{
    if (f->mode == FAKE_SILENT) return;
    if (f->mode == FAKE_ERROR) {
        puts_fd(fd, "error: nope, not today\n");
        return;
    }
    if (f->mode == FAKE_STALL) usleep((useconds_t)f->stall_ms * 1000); /* holds every connection */
    char *digits;
    size_t len;
    assert_ok(loadgen_factorial_digits(n, &digits, &len));
    if (f->mode == FAKE_WRONG_DIGIT) digits[len / 2] = digits[len / 2] == '7' ? '8' : '7';
    put(fd, digits, len);
    puts_fd(fd, "\n");
    free(digits);
}

/* Answers one request line; false to close the connection. */
static bool fake_line(struct fake *f, struct fake_conn *c, char *line)
{
    if (!strcmp(line, "ping")) {
        if (f->mode == FAKE_CLOSE_PINGS && ++c->pings > 10) return false;
        puts_fd(c->fd, "pong\n");
    } else if (!strcmp(line, "stats")) {
        puts_fd(c->fd, "lag p50_us=1 p99_us=2 max_us=3\n");
    } else if (!strncmp(line, "factorial ", 10)) {
        fake_factorial(f, c->fd, strtoul(line + 10, NULL, 10));
    } else if (!strncmp(line, "walk ", 5)) {
        fake_walk(f, c->fd, line + 5);
    } else {
        puts_fd(c->fd, "error: unknown request\n");
    }
    return true;
}

static void fake_readable(struct fake *f, struct fake_conn *c)
{
    ssize_t n = recv(c->fd, c->buf + c->len, FAKE_BUF - c->len, 0);
    bool open = n > 0;
    if (open) c->len += (size_t)n;
    char *nl;
    while (open && (nl = memchr(c->buf, '\n', c->len))) {
        *nl = '\0';
        open = fake_line(f, c, c->buf);
        c->len -= (size_t)(nl + 1 - c->buf);
        memmove(c->buf, nl + 1, c->len);
    }
    if (!open) {
        close(c->fd);
        c->fd = -1;
    }
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd pfd[FAKE_CONNS + 1] = {{.fd = f->lfd, .events = POLLIN}};
        for (int i = 0; i < FAKE_CONNS; i++)
            pfd[i + 1] = (struct pollfd){f->conns[i].fd, POLLIN, 0};
        if (poll(pfd, FAKE_CONNS + 1, 20) <= 0) continue;
        for (int i = 0; i < FAKE_CONNS; i++)
            if (pfd[i + 1].revents && f->conns[i].fd >= 0) fake_readable(f, &f->conns[i]);
        if (!(pfd[0].revents & POLLIN)) continue;
        int fd = accept(f->lfd, NULL, NULL);
        for (int i = 0; fd >= 0 && i < FAKE_CONNS; i++)
            if (f->conns[i].fd < 0) {
                f->conns[i] = (struct fake_conn){.fd = fd};
                fd = -1;
            }
        if (fd >= 0) close(fd);
    }
    free(walk_out.buf);
    return NULL;
}

static struct fake *fake_start(enum fake_mode mode)
{
    struct fake *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->mode = mode;
    f->stall_ms = 300;
    for (int i = 0; i < FAKE_CONNS; i++) f->conns[i].fd = -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(f->lfd, 64), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sa, &sl), 0);
    f->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&f->tid, NULL, fake_main, f), 0);
    return f;
}

static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->tid, NULL);
    for (int i = 0; i < FAKE_CONNS; i++)
        if (f->conns[i].fd >= 0) close(f->conns[i].fd);
    close(f->lfd);
    free(f);
}

/* ---- helpers ---- */

static char tree[4096];

static void make_small_tree(void)
{
    struct loadgen_tree_opts o = {.entries = 40, .files_per_dir = 6, .special = true};
    assert_ok(loadgen_tree_make(NULL, &o, tree, sizeof tree));
}

/* A phase with a factorial and a walk of the small tree. */
static struct loadgen_phase work_phase(char **digits)
{
    struct loadgen_phase ph = {.duration = MO_MSEC(150), .timeout = MO_SEC(20)};
    ph.factorial_jobs = ph.walk_jobs = 1;
    ph.factorial_n = 3000;
    assert_ok(loadgen_factorial_digits(3000, digits, &ph.factorial_len));
    ph.factorial_digits = *digits;
    ph.walk_dir = tree;
    assert_ok(loadgen_walk_sum_dir(tree, &ph.walk_expect));
    return ph;
}

/* Runs one phase on a thread of its own against the fake; returns the
 * status. */
static int run_phase(struct fake *f, unsigned conns, int64_t period, const struct loadgen_phase *ph,
                     struct loadgen_result *res, atomic_int *cancel)
{
    struct loadgen_opts o = {NULL, f->port, conns, period, 0, cancel};
    struct loadgen_thread *t;
    assert_ok(loadgen_spawn(&t, &o, ph, 1, res));
    return loadgen_join(t);
}

static const struct loadgen_job *job(const struct loadgen_result *r, int kind)
{
    for (unsigned i = 0; i < r->njobs; i++)
        if (r->jobs[i].kind == kind) return &r->jobs[i];
    fail_msg("no job of kind %d", kind);
    return NULL;
}

/* ---- the client against a good server ---- */

static void test_pings_and_work_are_measured(void **state)
{
    (void)state;
    make_small_tree();
    struct fake *f = fake_start(FAKE_OK);
    char *digits;
    struct loadgen_phase ph = work_phase(&digits);
    ph.ask_stats = true;
    struct loadgen_result r;
    int err = run_phase(f, 4, MO_MSEC(5), &ph, &r, NULL);
    if (err) fail_msg("status %d: %s", err, r.error);
    /* 4 connections, one ping each every 5 ms, for at least 150 ms. */
    assert_true(r.pings_sent >= 4 * 150 / 5);
    assert_int_equal(r.nsamples, r.pings_sent); /* every ping answered and counted */
    assert_int_equal(r.ping.count, r.nsamples);
    for (size_t i = 0; i < r.nsamples; i++) {
        assert_true(r.samples[i].rtt > 0);
        assert_true(r.samples[i].sched >= r.start && r.samples[i].sched <= r.end);
    }
    assert_true(r.ping.p50 <= r.ping.p99 && r.ping.p99 <= r.ping.max);
    const struct loadgen_job *fj = job(&r, LOADGEN_FACTORIAL), *wj = job(&r, LOADGEN_WALK);
    assert_true(fj->ok && wj->ok);
    assert_int_equal(fj->bytes, ph.factorial_len + 1);
    assert_int_equal(wj->paths, ph.walk_expect.count);
    assert_true(fj->sent > 0 && fj->first_byte >= fj->sent && fj->last_byte >= fj->first_byte);
    assert_true(r.work_start > 0 && r.work_start <= r.work_end && r.work_end <= r.end);
    assert_string_equal(job(&r, LOADGEN_STATS)->answer, "lag p50_us=1 p99_us=2 max_us=3");
    loadgen_result_free(&r);
    free(digits);
    fake_stop(f);
    loadgen_tree_remove(tree);
}

/* The server holds every connection for 300 ms while it computes. A client
 * that waits for each pong before the next ping would see one late pong per
 * connection; this one keeps its timetable, so every ping due during the
 * stall is late, by up to the whole stall, measured from when it was due. */
static void test_stalled_server_shows_every_late_ping(void **state)
{
    (void)state;
    make_small_tree();
    struct fake *f = fake_start(FAKE_STALL);
    char *digits;
    struct loadgen_phase ph = work_phase(&digits);
    ph.walk_jobs = 0;
    struct loadgen_result r;
    int err = run_phase(f, 4, MO_MSEC(10), &ph, &r, NULL);
    if (err) fail_msg("status %d: %s", err, r.error);
    size_t late = 0;
    for (size_t i = 0; i < r.nsamples; i++) late += r.samples[i].rtt >= MO_MSEC(100);
    /* About 4 x 20 pings were due in the stall's first 200 ms. */
    if (late < 40) fail_msg("only %zu pings late by 100 ms or more", late);
    assert_true(r.ping_work.max >= MO_MSEC(250));
    assert_true(r.ping_work.count > 0 && r.ping_work.count <= r.ping.count);
    loadgen_result_free(&r);
    free(digits);
    fake_stop(f);
    loadgen_tree_remove(tree);
}

/* ---- wrong answers ---- */

static void expect_wrong(enum fake_mode mode, int kind, const char *why)
{
    make_small_tree();
    struct fake *f = fake_start(mode);
    char *digits;
    struct loadgen_phase ph = work_phase(&digits);
    struct loadgen_result r;
    assert_mo(MO_EIO, run_phase(f, 2, MO_MSEC(10), &ph, &r, NULL));
    const struct loadgen_job *j = job(&r, kind);
    assert_true(j->done && !j->ok);
    if (!strstr(j->error, why)) fail_msg("error '%s' does not say '%s'", j->error, why);
    if (!strstr(r.error, why)) fail_msg("error '%s' does not say '%s'", r.error, why);
    assert_true(r.ping.count > 0); /* the phase went on */
    loadgen_result_free(&r);
    free(digits);
    fake_stop(f);
    loadgen_tree_remove(tree);
}

static void test_wrong_digit_is_caught(void **state)
{
    (void)state;
    char *digits, want[64];
    size_t len;
    assert_ok(loadgen_factorial_digits(3000, &digits, &len));
    free(digits);
    snprintf(want, sizeof want, "digit %zu of %zu", len / 2 + 1, len); /* the one changed */
    expect_wrong(FAKE_WRONG_DIGIT, LOADGEN_FACTORIAL, want);
}

static void test_missing_path_is_caught(void **state)
{
    (void)state;
    expect_wrong(FAKE_WRONG_WALK, LOADGEN_WALK, "paths");
}

static void test_error_answer_is_caught(void **state)
{
    (void)state;
    expect_wrong(FAKE_ERROR, LOADGEN_FACTORIAL, "nope, not today");
}

/* ---- bounds ---- */

static void test_silent_server_times_out(void **state)
{
    (void)state;
    make_small_tree();
    struct fake *f = fake_start(FAKE_SILENT);
    char *digits;
    struct loadgen_phase ph[2] = {work_phase(&digits), {.duration = MO_MSEC(50)}};
    ph[0].timeout = MO_MSEC(300);
    struct loadgen_result r[2];
    struct loadgen_opts o = {NULL, f->port, 2, MO_MSEC(10), 0, NULL};
    struct loadgen_thread *t;
    int64_t start = mo_hrtime();
    assert_ok(loadgen_spawn(&t, &o, ph, 2, r));
    assert_mo(MO_ETIMEDOUT, loadgen_join(t));
    assert_true(mo_hrtime() - start < MO_SEC(10));
    assert_mo(MO_ETIMEDOUT, r[0].status);
    if (!strstr(r[0].error, "factorial")) fail_msg("'%s' does not name the factorial", r[0].error);
    assert_mo(MO_ECANCELED, r[1].status); /* a timeout stops the list: phase 2 never ran */
    assert_non_null(strstr(r[1].error, "not run"));
    assert_int_equal(r[1].nsamples, 0);
    loadgen_result_free(&r[0]);
    free(digits);
    fake_stop(f);
    loadgen_tree_remove(tree);
}

/* After a phase broke the connections, the next one refuses to run. */
static void test_broken_loadgen_refuses_later_phases(void **state)
{
    (void)state;
    struct fake *f = fake_start(FAKE_CLOSE_PINGS);
    struct loadgen_opts o = {NULL, f->port, 2, MO_MSEC(5), 0, NULL};
    struct loadgen *lg;
    assert_ok(loadgen_new(&lg, &o));
    struct loadgen_phase ph = {.duration = MO_SEC(5), .timeout = MO_SEC(20)};
    struct loadgen_result r;
    assert_mo(MO_EPIPE, loadgen_run(lg, &ph, &r));
    if (!strstr(r.error, "closed")) fail_msg("'%s' does not say the server closed", r.error);
    assert_true(r.end - r.start < MO_SEC(5)); /* stopped at once, not at the duration */
    loadgen_result_free(&r);
    assert_mo(MO_ESHUTDOWN, loadgen_run(lg, &ph, &r));
    loadgen_result_free(&r);
    loadgen_free(lg);
    fake_stop(f);
}

static void test_cancel_stops_the_phase(void **state)
{
    (void)state;
    struct fake *f = fake_start(FAKE_OK);
    atomic_int cancel = 0;
    struct loadgen_phase ph = {.duration = MO_SEC(30), .timeout = MO_SEC(60)};
    struct loadgen_result r;
    struct loadgen_opts o = {NULL, f->port, 2, MO_MSEC(5), 0, &cancel};
    struct loadgen_thread *t;
    int64_t start = mo_hrtime();
    assert_ok(loadgen_spawn(&t, &o, &ph, 1, &r));
    usleep(100000);
    atomic_store(&cancel, 1);
    assert_mo(MO_ECANCELED, loadgen_join(t));
    assert_true(mo_hrtime() - start < MO_SEC(10));
    assert_true(r.ping.count > 0);
    loadgen_result_free(&r);
    fake_stop(f);
}

static void test_connect_refused_and_bad_options(void **state)
{
    (void)state;
    struct fake *f = fake_start(FAKE_OK);
    unsigned port = f->port;
    fake_stop(f); /* nothing listens there now */
    struct loadgen *lg = NULL;
    struct loadgen_opts o = {NULL, port, 2, 0, 0, NULL};
    assert_mo(-ECONNREFUSED, loadgen_new(&lg, &o));
    assert_null(lg);
    o.host = "not-an-address";
    assert_mo(MO_EINVAL, loadgen_new(&lg, &o));
    o.host = NULL;
    o.port = 0;
    assert_mo(MO_EINVAL, loadgen_new(&lg, &o));
    /* loadgen_spawn reports the connect's error in every result. */
    o.port = port;
    struct loadgen_phase ph = {.duration = MO_MSEC(10)};
    struct loadgen_result r;
    struct loadgen_thread *t;
    assert_ok(loadgen_spawn(&t, &o, &ph, 1, &r));
    assert_mo(-ECONNREFUSED, loadgen_join(t));
    assert_mo(-ECONNREFUSED, r.status);
    assert_non_null(strstr(r.error, "cannot connect"));
}

/* ---- summaries, answers and trees ---- */

static void test_summarize_nearest_rank(void **state)
{
    (void)state;
    struct loadgen_sample s[100];
    for (int i = 0; i < 100; i++) s[i] = (struct loadgen_sample){i, 100 - i}; /* rtt 100..1 */
    struct loadgen_summary sum;
    assert_ok(loadgen_summarize(s, 100, 0, 99, &sum));
    assert_int_equal(sum.count, 100);
    assert_int_equal(sum.p50, 50);
    assert_int_equal(sum.p99, 99);
    assert_int_equal(sum.max, 100);
    assert_ok(loadgen_summarize(s, 100, 90, 99, &sum)); /* due in [90, 99]: rtt 10..1 */
    assert_int_equal(sum.count, 10);
    assert_int_equal(sum.p50, 5);
    assert_int_equal(sum.p99, 10);
    assert_ok(loadgen_summarize(s, 100, 200, 300, &sum));
    assert_int_equal(sum.count, 0);
    assert_int_equal(sum.max, 0);
}

static void test_answers_to_check_against(void **state)
{
    (void)state;
    char *digits;
    size_t len;
    assert_ok(loadgen_factorial_digits(20, &digits, &len));
    assert_int_equal(len, 19);
    assert_memory_equal(digits, "2432902008176640000", 19);
    free(digits);
    assert_ok(loadgen_factorial_digits(0, &digits, &len));
    assert_int_equal(len, 1);
    assert_int_equal(digits[0], '1');
    free(digits);
    char out[32];
    assert_int_equal(loadgen_escape("a\nb\\c", 5, out), 7);
    assert_string_equal(out, "a\\nb\\\\c");
    /* The sum of lines does not depend on their order, but on each line. */
    struct loadgen_walk_sum a = {0, 0}, b = {0, 0}, c = {0, 0};
    loadgen_walk_sum_line(&a, "x/1", 3);
    loadgen_walk_sum_line(&a, "x/2", 3);
    loadgen_walk_sum_line(&b, "x/2", 3);
    loadgen_walk_sum_line(&b, "x/1", 3);
    loadgen_walk_sum_line(&c, "x/1", 3);
    loadgen_walk_sum_line(&c, "x/3", 3);
    assert_true(a.count == b.count && a.hash == b.hash);
    assert_true(a.count == c.count && a.hash != c.hash);
}

/* The sum of a tree's paths relative to its top ("." and "./..."). */
static struct loadgen_walk_sum relative_sum(const char *dir)
{
    char cwd[4096];
    struct loadgen_walk_sum sum;
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    assert_ok(loadgen_walk_sum_dir(".", &sum));
    assert_int_equal(chdir(cwd), 0);
    return sum;
}

static void test_tree_is_exact_and_deterministic(void **state)
{
    (void)state;
    struct loadgen_tree_opts o = {.entries = 1000, .files_per_dir = 20};
    char one[4096], two[4096], p[4200];
    assert_ok(loadgen_tree_make(NULL, &o, one, sizeof one));
    assert_ok(loadgen_tree_make(NULL, &o, two, sizeof two));
    struct loadgen_walk_sum a = relative_sum(one), b = relative_sum(two);
    assert_int_equal(a.count, 1001); /* the entries and the top */
    assert_true(a.count == b.count && a.hash == b.hash);
    /* Three levels: 1 + B + B^2 directories of 20 files hold 1000 with B = 6. */
    snprintf(p, sizeof p, "%s/d005/d005", one);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_ok(loadgen_tree_remove(one));
    assert_ok(loadgen_tree_remove(two));
    assert_int_equal(stat(one, &st), -1);
    /* Special names: escaped in the sum, a link not followed. */
    o = (struct loadgen_tree_opts){.entries = 10, .files_per_dir = 10, .special = true};
    assert_ok(loadgen_tree_make(NULL, &o, one, sizeof one));
    a = relative_sum(one);
    assert_int_equal(a.count, 1 + 10 + 7);
    assert_ok(loadgen_tree_remove(one));
}

static void test_tree_cancel_removes_it(void **state)
{
    (void)state;
    atomic_int cancel = 1;
    struct loadgen_tree_opts o = {.entries = 100000, .cancel = &cancel};
    char path[4096];
    struct stat st;
    assert_mo(MO_ECANCELED, loadgen_tree_make(NULL, &o, path, sizeof path));
    assert_int_equal(stat(path, &st), -1);
    assert_mo(MO_EINVAL, loadgen_tree_make(NULL, NULL, path, sizeof path));
    assert_mo(MO_ENAMETOOLONG, loadgen_tree_make(NULL, &o, path, 8));
}

MO_TEST_MAIN(cmocka_unit_test(test_pings_and_work_are_measured),
             cmocka_unit_test(test_stalled_server_shows_every_late_ping),
             cmocka_unit_test(test_wrong_digit_is_caught),
             cmocka_unit_test(test_missing_path_is_caught),
             cmocka_unit_test(test_error_answer_is_caught),
             cmocka_unit_test(test_silent_server_times_out),
             cmocka_unit_test(test_broken_loadgen_refuses_later_phases),
             cmocka_unit_test(test_cancel_stops_the_phase),
             cmocka_unit_test(test_connect_refused_and_bad_options),
             cmocka_unit_test(test_summarize_nearest_rank),
             cmocka_unit_test(test_answers_to_check_against),
             cmocka_unit_test(test_tree_is_exact_and_deterministic),
             cmocka_unit_test(test_tree_cancel_removes_it))
