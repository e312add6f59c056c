/* morsel serve: the line protocol (docs/protocol.md) as a client sees it,
 * through the morsel binary beside the test: answers and errors, order,
 * walk's escaping and confinement, --max-connections, --unix, the three
 * modes, backpressure on a client that does not read, clients that
 * misbehave, and the clean shutdown on SIGTERM with its grace. Every
 * socket has a receive timeout, so a server that does not answer fails
 * the test instead of hanging it. */
#include "test.h"

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *morsel;

static void find_morsel(void)
{
    morsel = mo_test_program("morsel");
}

/* ---- the server process ---- */

struct srv {
    pid_t pid;
    int port;
    int out, err; /* its stdout and stderr */
    char first[256];
    char log[16384]; /* its stderr, read when it stopped */
};

/* Reads one line from fd, byte by byte (for the server's stdout). */
static bool read_fd_line(int fd, char *buf, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        ssize_t r = read(fd, buf + n, 1);
        if (r <= 0) return false;
        if (buf[n] == '\n') break;
        n++;
    }
    buf[n] = '\0';
    return true;
}

/* Starts `morsel serve ARGS...` (NULL-terminated) and reads its first line. */
static void srv_start(struct srv *s, const char *arg, ...)
{
    find_morsel();
    const char *argv[32] = {morsel, "serve"};
    int argc = 2;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && argc < 31; a = va_arg(ap, const char *)) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    int out[2], err[2];
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(out[0]), close(err[0]), close(out[1]), close(err[1]);
        execv(morsel, (char **)argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    s->out = out[0];
    s->err = err[0];
    s->log[0] = '\0';
    fcntl(s->err, F_SETFL, O_NONBLOCK);
    assert_true(read_fd_line(s->out, s->first, sizeof s->first));
    s->port = 0;
    const char *colon = strrchr(s->first, ':');
    if (!strncmp(s->first, "listening on 127.0.0.1:", 23)) s->port = atoi(colon + 1);
}

/* What the server wrote on stderr, into s->log. */
static void srv_read_log(struct srv *s)
{
    size_t n = strlen(s->log), size = sizeof s->log;
    ssize_t r;
    while (n + 1 < size && (r = read(s->err, s->log + n, size - 1 - n)) > 0) n += (size_t)r;
    s->log[n] = '\0';
}

/* Waits (at most 20 s) until the server's stderr holds `needle`. */
static void srv_wait_log(struct srv *s, const char *needle)
{
    for (int i = 0; i < 2000 && !strstr(s->log, needle); i++) {
        srv_read_log(s);
        usleep(10000);
    }
    if (!strstr(s->log, needle)) fail_msg("the server never logged '%s'", needle);
}

/* Sends sig and waits (at most 20 s) for the exit status. */
static int srv_stop(struct srv *s, int sig)
{
    kill(s->pid, sig);
    int status = -1;
    for (int i = 0; i < 2000; i++) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) break;
        usleep(10000);
    }
    if (!WIFEXITED(status)) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
        fail_msg("the server did not exit on signal %d", sig);
    }
    srv_read_log(s);
    close(s->out);
    close(s->err);
    return WEXITSTATUS(status);
}

/* ---- clients ---- */

struct client {
    int fd;
    char buf[1 << 16];
    size_t len, pos;
};

static void set_timeout(int fd, int secs)
{
    struct timeval tv = {secs, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void client_open(struct client *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    set_timeout(c->fd, 20);
}

static void send_str(struct client *c, const char *s)
{
    size_t len = strlen(s);
    assert_int_equal(send(c->fd, s, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads one line (without its "\n") into a malloc'd string; NULL at the
 * end of the connection. Fails on a timeout. */
static char *get_line(struct client *c)
{
    char *line = NULL;
    size_t n = 0;
    for (;;) {
        if (c->pos == c->len) {
            ssize_t r = recv(c->fd, c->buf, sizeof c->buf, 0);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) fail_msg("no answer in 20 s");
            if (r <= 0) {
                free(line);
                return NULL;
            }
            c->len = (size_t)r;
            c->pos = 0;
        }
        char *nl = memchr(c->buf + c->pos, '\n', c->len - c->pos);
        size_t k = nl ? (size_t)(nl - (c->buf + c->pos)) : c->len - c->pos;
        char *grown = realloc(line, n + k + 1);
        assert_non_null(grown);
        line = grown;
        memcpy(line + n, c->buf + c->pos, k);
        n += k;
        line[n] = '\0';
        c->pos += k + (nl != NULL);
        if (nl) return line;
    }
}

static void expect_line(struct client *c, const char *want)
{
    char *got = get_line(c);
    if (!got || strcmp(got, want) != 0)
        fail_msg("got '%.200s', expected '%s'", got ? got : "(the end)", want);
    free(got);
}

static void client_close(struct client *c)
{
    close(c->fd);
}

/* The output of `morsel factorial N`. */
static char *cli_factorial(unsigned long n)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "'%s' factorial %lu", morsel, n);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 20, len = 0;
    char *s = malloc(cap);
    size_t r;
    while ((r = fread(s + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (len + 1 == cap) {
            char *grown = realloc(s, cap *= 2);
            assert_non_null(grown);
            s = grown;
        }
    }
    s[len] = '\0';
    assert_int_equal(pclose(p), 0);
    if (len && s[len - 1] == '\n') s[len - 1] = '\0';
    return s;
}

/* ---- the protocol ---- */

static void test_requests_and_errors(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, (char *)NULL);
    assert_true(s.port > 0);
    struct client c;
    client_open(&c, s.port);
    send_str(&c, "ping\n");
    expect_line(&c, "pong");
    send_str(&c, "ping\r\n"); /* a "\r" before the "\n" is ignored */
    expect_line(&c, "pong");
    send_str(&c, "stats\n");
    char *st = get_line(&c);
    long a, b, m;
    assert_int_equal(sscanf(st, "lag p50_us=%ld p99_us=%ld max_us=%ld", &a, &b, &m), 3);
    assert_true(a <= b && b <= m);
    free(st);
    send_str(&c, "factorial 0\nfactorial 1\nfactorial 10\nfactorial 25\nfactorial 0000000005\n");
    expect_line(&c, "1");
    expect_line(&c, "1");
    expect_line(&c, "3628800");
    expect_line(&c, "15511210043330985984000000");
    expect_line(&c, "120"); /* leading zeros are digits too */
    static const char *const bad[][2] = {
        {"bogus\n", "error: unknown request 'bogus'"},
        {"\n", "error: empty request"},
        {"ping now\n", "error: ping takes no argument"},
        {"factorial\n", "error: factorial: N must be a whole number from 0 to 100000000"},
        {"factorial -1\n", "error: factorial: N must be a whole number from 0 to 100000000"},
        {"factorial 100000001\n", "error: factorial: N must be a whole number from 0 to 100000000"},
        {"factorial 1x\n", "error: factorial: N must be a whole number from 0 to 100000000"},
        {"walk\n", "error: walk: DIR is missing"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        send_str(&c, bad[i][0]);
        expect_line(&c, bad[i][1]);
    }
    /* A NUL byte is an error for that request only. */
    assert_int_equal(send(c.fd, "pi\0ng\nping\n", 11, 0), 11);
    expect_line(&c, "error: a request is text without NUL bytes");
    expect_line(&c, "pong");
    client_close(&c);
    assert_int_equal(srv_stop(&s, SIGTERM), 0);
}

/* A large factorial is the CLI's, digit for digit. */
static void test_factorial_matches_cli(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, (char *)NULL);
    struct client c;
    client_open(&c, s.port);
    send_str(&c, "factorial 200000\nping\n");
    char *got = get_line(&c);
    char *want = cli_factorial(200000);
    assert_int_equal(strlen(got), strlen(want));
    assert_true(strcmp(got, want) == 0);
    free(got);
    free(want);
    expect_line(&c, "pong");
    client_close(&c);
    assert_int_equal(srv_stop(&s, SIGTERM), 0);
}

/* Pipelined requests are answered in order, however long each takes. */
static void test_pipelined_answers_in_order(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, (char *)NULL); /* no --root: anywhere */
    struct client c;
    client_open(&c, s.port);
    send_str(&c, "ping\nfactorial 50000\nping\nwalk /proc/self/fd\nfactorial 5\nstats\nping\n");
    expect_line(&c, "pong");
    char *f = get_line(&c);
    assert_true(strlen(f) > 200000);
    free(f);
    expect_line(&c, "pong");
    char *l;
    int paths = 0;
    while ((l = get_line(&c)) && *l) {
        assert_true(!strncmp(l, "/proc/self/fd", 13));
        paths++;
        free(l);
    }
    free(l);
    assert_true(paths >= 1);
    expect_line(&c, "120");
    char *st = get_line(&c);
    assert_true(!strncmp(st, "lag p50_us=", 11));
    free(st);
    expect_line(&c, "pong");
    client_close(&c);
    assert_int_equal(srv_stop(&s, SIGTERM), 0);
}

/* ---- walk ---- */

static char tree_root[128];

static void make_tree(void)
{
    snprintf(tree_root, sizeof tree_root, "/tmp/morsel-serve-%d", (int)getpid());
    char p[256];
    mkdir(tree_root, 0755);
    snprintf(p, sizeof p, "%s/tree", tree_root);
    assert_int_equal(mkdir(p, 0755), 0);
    static const char *const files[] = {"a", "b\nc", "back\\slash", "sub/x"};
    snprintf(p, sizeof p, "%s/tree/sub", tree_root);
    assert_int_equal(mkdir(p, 0755), 0);
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/tree/%s", tree_root, files[i]);
        assert_int_equal(close(open(p, O_CREAT | O_WRONLY, 0644)), 0);
    }
    snprintf(p, sizeof p, "%s/tree/out", tree_root);
    assert_int_equal(symlink("/etc", p), 0);
}

static void remove_tree(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tree_root);
    assert_int_equal(system(cmd), 0);
}

static void test_walk_escapes_and_confines(void **state)
{
    (void)state;
    make_tree();
    struct srv s;
    srv_start(&s, "--root", tree_root, (char *)NULL);
    struct client c;
    client_open(&c, s.port);
    send_str(&c, "walk tree\n");
    static const char *const want[] = {"tree/a",   "tree/b\\nc", "tree/back\\\\slash",
                                       "tree/sub", "tree/sub/x", "tree/out"};
    bool seen[6] = {0};
    expect_line(&c, "tree"); /* DIR first, as find prints it */
    char *l;
    int n = 0;
    while ((l = get_line(&c)) && *l) {
        bool known = false;
        for (int i = 0; i < 6; i++)
            if (!strcmp(l, want[i])) known = seen[i] = true;
        if (!known) fail_msg("unexpected path '%s'", l);
        n++;
        free(l);
    }
    assert_non_null(l); /* the empty line ends the answer */
    free(l);
    assert_int_equal(n, 6);
    /* Outside the root: by "..", by an absolute path, by a symbolic link;
     * and a path that is not there. */
    send_str(&c, "walk ..\nwalk /etc\nwalk tree/out\nwalk tree/nothing\n");
    expect_line(&c, "error: walk: ..: outside the root");
    expect_line(&c, "error: walk: /etc: outside the root");
    expect_line(&c, "error: walk: tree/out: outside the root");
    expect_line(&c, "error: walk: tree/nothing: No such file or directory");
    /* An absolute path inside the root; a file is not a directory. */
    char req[256];
    snprintf(req, sizeof req, "walk %s/tree/sub\nwalk tree/a\n", tree_root);
    send_str(&c, req);
    snprintf(req, sizeof req, "%s/tree/sub", tree_root);
    expect_line(&c, req);
    snprintf(req, sizeof req, "%s/tree/sub/x", tree_root);
    expect_line(&c, req);
    expect_line(&c, "");
    expect_line(&c, "error: walk: tree/a: Not a directory");
    client_close(&c);
    assert_int_equal(srv_stop(&s, SIGTERM), 0);
    remove_tree();
}

/* An unreadable directory ends the answer with its error, after the paths
 * so far, and no empty line. */
static void test_walk_error_midway(void **state)
{
    (void)state;
    if (geteuid() == 0) skip(); /* root reads every directory */
    make_tree();
    char p[256];
    snprintf(p, sizeof p, "%s/tree/sub", tree_root);
    chmod(p, 0);
    struct srv s;
    srv_start(&s, "--root", tree_root, (char *)NULL);
    struct client c;
    client_open(&c, s.port);
    send_str(&c, "walk tree\nping\n");
    char *l;
    while ((l = get_line(&c)) && strncmp(l, "error: ", 7) != 0) {
        assert_true(*l); /* no empty line before the error */
        free(l);
    }
    assert_string_equal(l, "error: walk: tree/sub: Permission denied");
    free(l);
    expect_line(&c, "pong");
    client_close(&c);
    chmod(p, 0755);
    assert_int_equal(srv_stop(&s, SIGTERM), 0);
    remove_tree();
}

/* ---- connections ---- */

static void test_max_connections_and_log(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "--max-connections", "1", (char *)NULL);
    struct client a, b;
    client_open(&a, s.port);
    send_str(&a, "ping\n");
    expect_line(&a, "pong");
    client_open(&b, s.port);
    expect_line(&b, "error: too many connections");
    assert_null(get_line(&b));
    client_close(&b);
    send_str(&a, "ping\n");
    expect_line(&a, "pong");
    client_close(&a);
    /* Once a's end is seen, a new connection is served again. */
    struct client d;
    for (int tries = 0;; tries++) {
        client_open(&d, s.port);
        send_str(&d, "ping\n");
        char *l = get_line(&d);
        bool ok = l && !strcmp(l, "pong");
        free(l);
        if (ok) break;
        client_close(&d);
        assert_true(tries < 100);
        usleep(10000);
    }
    client_close(&d);
    assert_int_equal(srv_stop(&s, SIGTERM), 0);
    assert_non_null(strstr(s.log, "serve: conn=1 peer=127.0.0.1:"));
    assert_non_null(strstr(s.log, "refused=too-many-connections"));
    assert_non_null(strstr(s.log, "requests=2 "));
}

static void test_unix_socket(void **state)
{
    (void)state;
    char path[108];
    snprintf(path, sizeof path, "/tmp/morsel-serve-%d.sock", (int)getpid());
    unlink(path);
    struct srv s;
    srv_start(&s, "--unix", path, (char *)NULL);
    char want[160];
    snprintf(want, sizeof want, "listening on unix:%s", path);
    assert_string_equal(s.first, want);
    struct client c = {0};
    c.fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    assert_int_equal(connect(c.fd, (struct sockaddr *)&a, sizeof a), 0);
    set_timeout(c.fd, 20);
    send_str(&c, "ping\nfactorial 20\n");
    expect_line(&c, "pong");
    expect_line(&c, "2432902008176640000");
    client_close(&c);
    assert_int_equal(srv_stop(&s, SIGINT), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), -1); /* removed on the way out */
}

/* The three modes give the same answers. */
static void test_blocking_and_steps_modes(void **state)
{
    (void)state;
    make_tree();
    static const char *const modes[][2] = {{"--blocking", NULL}, {"--steps", "7"}};
    for (int m = 0; m < 2; m++) {
        struct srv s;
        if (modes[m][1])
            srv_start(&s, "--root", tree_root, modes[m][0], modes[m][1], (char *)NULL);
        else
            srv_start(&s, "--root", tree_root, modes[m][0], (char *)NULL);
        struct client c;
        client_open(&c, s.port);
        send_str(&c, "factorial 30\nfactorial 3000\nwalk tree/sub\nping\n");
        expect_line(&c, "265252859812191058636308480000000");
        char *f = get_line(&c);
        char *want = cli_factorial(3000);
        assert_string_equal(f, want);
        free(f);
        free(want);
        expect_line(&c, "tree/sub");
        expect_line(&c, "tree/sub/x");
        expect_line(&c, "");
        expect_line(&c, "pong");
        client_close(&c);
        assert_int_equal(srv_stop(&s, SIGTERM), 0);
    }
    remove_tree();
}

/* ---- clients that misbehave ---- */

/* A line of up to 1 GiB: refused after 4096 bytes with its error, and
 * the server goes on serving others. */
static void test_line_too_long(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, (char *)NULL);
    struct client c, d;
    client_open(&c, s.port);
    static char chunk[1 << 16];
    memset(chunk, 'x', sizeof chunk);
    size_t sent = 0;
    while (sent < ((size_t)1 << 30)) {
        ssize_t n = send(c.fd, chunk, sizeof chunk, MSG_NOSIGNAL);
        if (n <= 0) break; /* the server closed: EPIPE, ECONNRESET, or the send timeout */
        sent += (size_t)n;
    }
    assert_true(sent < ((size_t)1 << 30));
    char *l = get_line(&c);
    /* The error line, unless the reset of the unread bytes beat it. */
    if (l) assert_string_equal(l, "error: line too long");
    free(l);
    client_close(&c);
    client_open(&d, s.port);
    send_str(&d, "ping\n");
    expect_line(&d, "pong");
    client_close(&d);
    assert_int_equal(srv_stop(&s, SIGTERM), 0);
}

/* A client that never reads its factorial's digits: the server's queue for
 * it stays within the high mark plus one chunk of text (64 KiB + 400,001
 * bytes), pings on another connection are answered meanwhile, and the
 * client's reset ends its connection without harm. */
static void test_client_that_never_reads(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, (char *)NULL);
    struct client c, p;
    client_open(&c, s.port);
    int small = 4096;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    send_str(&c, "factorial 2000000\n"); /* 11.7 MB of digits */
    char first;
    assert_int_equal(recv(c.fd, &first, 1, 0), 1); /* the digits have begun */
    client_open(&p, s.port);
    for (int i = 0; i < 200; i++) {
        send_str(&p, "ping\n");
        expect_line(&p, "pong");
        usleep(10000);
    }
    struct linger lg = {1, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    client_close(&c); /* a reset, with the answer half sent */
    send_str(&p, "ping\n");
    expect_line(&p, "pong");
    srv_wait_log(&s, "conn=1 "); /* it ended of the reset, not of the shutdown */
    client_close(&p);
    assert_int_equal(srv_stop(&s, SIGTERM), 0);
    const char *line = strstr(s.log, "conn=1 ");
    assert_non_null(line);
    const char *mq = strstr(line, "max_queued=");
    assert_non_null(mq);
    long queued = atol(mq + 11);
    if (queued > 65536 + 400001) fail_msg("queued %ld bytes", queued);
    assert_true(strstr(line, "end=ECONNRESET") || strstr(line, "end=EPIPE"));
}

/* ---- shutting down ---- */

/* SIGTERM: the listener closes, an idle connection is closed, and an
 * answer in progress finishes within the grace; the exit status is 0. */
static void test_sigterm_lets_answers_finish(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "--grace", "20", (char *)NULL);
    struct client busy, idle;
    client_open(&busy, s.port);
    client_open(&idle, s.port);
    send_str(&idle, "ping\n");
    expect_line(&idle, "pong");
    send_str(&busy, "factorial 1000000\n");
    usleep(100000);
    kill(s.pid, SIGTERM);
    char *end = get_line(&idle);
    assert_null(end); /* closed */
    free(end);
    char *f = get_line(&busy);
    assert_non_null(f);
    assert_int_equal(strlen(f), 5565709); /* every digit of 10^6! */
    free(f);
    end = get_line(&busy);
    assert_null(end); /* then closed */
    free(end);
    client_close(&busy);
    client_close(&idle);
    assert_int_equal(srv_stop(&s, 0), 0); /* signal 0: only wait */
}

/* When the grace runs out, what still runs is aborted, and the server
 * exits 0 all the same. */
static void test_grace_runs_out(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "--grace", "0.3", (char *)NULL);
    struct client c;
    client_open(&c, s.port);
    int small = 4096;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    send_str(&c, "factorial 3000000\n"); /* never read: it cannot finish */
    usleep(200000);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(srv_stop(&s, SIGTERM), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (secs > 15) fail_msg("took %.1f s to exit", secs);
    client_close(&c);
}

static void test_usage_and_listen_errors(void **state)
{
    (void)state;
    find_morsel();
    char cmd[PATH_MAX + 256];
    static const char *const usage[] = {"--bogus",   "--max-connections 0",
                                        "--grace x", "--blocking --steps 3",
                                        "--steps 0", "extra"};
    for (size_t i = 0; i < sizeof usage / sizeof *usage; i++) {
        snprintf(cmd, sizeof cmd, "'%s' serve %s >/dev/null 2>&1", morsel, usage[i]);
        int st = system(cmd);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 2) fail_msg("'%s' did not exit 2", usage[i]);
    }
    snprintf(cmd, sizeof cmd, "'%s' serve --help | grep -q '^usage: morsel serve'", morsel);
    assert_int_equal(system(cmd), 0);
    /* A port in use: a message and status 1. */
    struct srv s;
    srv_start(&s, (char *)NULL);
    snprintf(cmd, sizeof cmd,
             "'%s' serve --listen 127.0.0.1:%d 2>&1 >/dev/null | grep -q "
             "'^morsel: serve: cannot listen on TCP: address already in use'",
             morsel, s.port);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' serve --listen 127.0.0.1:%d >/dev/null 2>&1", morsel, s.port);
    int st = system(cmd);
    assert_int_equal(WEXITSTATUS(st), 1);
    snprintf(cmd, sizeof cmd, "'%s' serve --root /nonexistent >/dev/null 2>&1", morsel);
    st = system(cmd);
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_int_equal(srv_stop(&s, SIGTERM), 0);
}

MO_TEST_MAIN(cmocka_unit_test(test_requests_and_errors),
             cmocka_unit_test(test_factorial_matches_cli),
             cmocka_unit_test(test_pipelined_answers_in_order),
             cmocka_unit_test(test_walk_escapes_and_confines),
             cmocka_unit_test(test_walk_error_midway),
             cmocka_unit_test(test_max_connections_and_log), cmocka_unit_test(test_unix_socket),
             cmocka_unit_test(test_blocking_and_steps_modes), cmocka_unit_test(test_line_too_long),
             cmocka_unit_test(test_client_that_never_reads),
             cmocka_unit_test(test_sigterm_lets_answers_finish),
             cmocka_unit_test(test_grace_runs_out), cmocka_unit_test(test_usage_and_listen_errors))
