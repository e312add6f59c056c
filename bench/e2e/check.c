/* e2e_client --check: docs/protocol.md, rule by rule, against one server,
 * with plain blocking sockets (every read bounded by a 20 s timeout), then
 * a short run of the load client itself. One line per check: "ok  NAME" or
 * "FAIL NAME: why". */
#include "check.h"
#include "loadgen.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 65536

struct peer {
    int fd;
    char buf[LINE_MAX_BYTES];
    size_t len;
    char line[LINE_MAX_BYTES];
};

static const char *g_host = "127.0.0.1";
static unsigned g_port;
static int g_failed, g_passed;

static void verdict(bool ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void verdict(bool ok, const char *name, const char *fmt, ...)
{
    if (ok) {
        printf("ok   %s\n", name);
        g_passed++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s: ", name);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    g_failed++;
}

static bool dial(struct peer *p)
{
    p->len = 0;
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    socklen_t sl = sizeof *in4;
    if (inet_pton(AF_INET, g_host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)g_port);
    } else if (inet_pton(AF_INET6, g_host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)g_port);
        sl = sizeof *in6;
    } else {
        return false;
    }
    p->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {20, 0};
    int one = 1;
    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (p->fd >= 0 && connect(p->fd, (struct sockaddr *)&ss, sl) == 0) return true;
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
    return false;
}

static void hang_up(struct peer *p)
{
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
}

static bool say(struct peer *p, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(p->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        s += w, n -= (size_t)w;
    }
    return true;
}

static bool says(struct peer *p, const char *s)
{
    return say(p, s, strlen(s));
}

/* The next line into p->line (without "\n"). 1: a line; 0: the server
 * closed before one; -1: timeout, error, or a line too long. */
static int hear(struct peer *p, size_t *lenp)
{
    for (;;) {
        char *nl = memchr(p->buf, '\n', p->len);
        if (nl) {
            size_t len = (size_t)(nl - p->buf);
            memcpy(p->line, p->buf, len);
            p->line[len] = '\0';
            memmove(p->buf, nl + 1, p->len - len - 1);
            p->len -= len + 1;
            if (lenp) *lenp = len;
            return 1;
        }
        if (p->len == sizeof p->buf) return -1;
        ssize_t n = recv(p->fd, p->buf + p->len, sizeof p->buf - p->len, 0);
        if (n == 0) return 0;
        if (n < 0) return -1;
        p->len += (size_t)n;
    }
}

static bool heard(struct peer *p, const char *want, const char *name)
{
    int rc = hear(p, NULL);
    bool ok = rc == 1 && !strcmp(p->line, want);
    verdict(ok, name, "expected '%.60s', got %s'%.60s'", want,
            rc == 1   ? ""
            : rc == 0 ? "end of stream "
                      : "timeout/error ",
            rc == 1 ? p->line : "");
    return ok;
}

static bool heard_error(struct peer *p, const char *name)
{
    int rc = hear(p, NULL);
    bool ok = rc == 1 && !strncmp(p->line, "error: ", 7);
    verdict(ok, name, "expected 'error: ...', got %s'%.60s'", rc == 1 ? "" : "nothing ",
            rc == 1 ? p->line : "");
    return ok;
}

static bool heard_eof(struct peer *p, const char *name)
{
    int rc = hear(p, NULL);
    verdict(rc == 0, name, "expected the server to close, got %s'%.60s'",
            rc == 1 ? "" : "timeout/error ", rc == 1 ? p->line : "");
    return rc == 0;
}

static bool stats_ok(const char *line)
{
    unsigned long a, b, c;
    int end = 0;
    return sscanf(line, "lag p50_us=%lu p99_us=%lu max_us=%lu%n", &a, &b, &c, &end) == 3 &&
           line[end] == '\0' && a <= b && b <= c;
}

/* ---- the checks ---- */

static void check_basics(void)
{
    struct peer p;
    if (!dial(&p)) {
        verdict(false, "connect", "cannot connect to %s:%u", g_host, g_port);
        return;
    }
    says(&p, "ping\n");
    heard(&p, "pong", "ping");
    says(&p, "ping\r\n");
    heard(&p, "pong", "ping with \\r\\n");
    says(&p, "factorial 20\n");
    heard(&p, "2432902008176640000", "factorial 20");
    says(&p, "factorial 0\n");
    heard(&p, "1", "factorial 0");
    says(&p, "factorial 1\n");
    heard(&p, "1", "factorial 1");
    char *digits;
    size_t len;
    if (loadgen_factorial_digits(3000, &digits, &len) == 0) {
        says(&p, "factorial 3000\n");
        int rc = hear(&p, NULL);
        verdict(rc == 1 && strlen(p.line) == len && !memcmp(p.line, digits, len),
                "factorial 3000 (GMP's digits)", "wrong answer (%zu bytes)", strlen(p.line));
        free(digits);
    }
    says(&p, "stats\n");
    int rc = hear(&p, NULL);
    verdict(rc == 1 && stats_ok(p.line), "stats", "got '%.80s'", rc == 1 ? p.line : "");
    hang_up(&p);
}

static void check_errors(void)
{
    static const char *const bad[] = {"factorial -1",
                                      "factorial x",
                                      "factorial 100000001",
                                      "factorial 1 2",
                                      "factorial ",
                                      "factorial",
                                      "factorial +5",
                                      "frobnicate",
                                      "PING",
                                      "ping ",
                                      "",
                                      "walk",
                                      "walk ",
                                      "stats now"};
    struct peer p;
    if (!dial(&p)) return;
    char name[80];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        says(&p, bad[i]);
        says(&p, "\n");
        snprintf(name, sizeof name, "error for '%s'", bad[i]);
        heard_error(&p, name);
    }
    says(&p, "ping\n");
    heard(&p, "pong", "the connection goes on after errors");
    hang_up(&p);
}

static void check_pipelining(void)
{
    struct peer p;
    if (!dial(&p)) return;
    says(&p, "factorial 2000\nping\nfactorial 25\nbogus\nstats\nping\n");
    char *digits;
    size_t len;
    if (loadgen_factorial_digits(2000, &digits, &len) != 0) return;
    int rc = hear(&p, NULL);
    verdict(rc == 1 && !strcmp(p.line, digits), "pipelined: 1st answer is factorial 2000",
            "got '%.40s'", rc == 1 ? p.line : "");
    free(digits);
    heard(&p, "pong", "pipelined: 2nd answer is pong");
    heard(&p, "15511210043330985984000000", "pipelined: 3rd answer is factorial 25");
    heard_error(&p, "pipelined: 4th answer is an error");
    rc = hear(&p, NULL);
    verdict(rc == 1 && stats_ok(p.line), "pipelined: 5th answer is stats", "got '%.60s'",
            rc == 1 ? p.line : "");
    heard(&p, "pong", "pipelined: 6th answer is pong");
    hang_up(&p);
}

static void check_half_close(void)
{
    struct peer p;
    if (!dial(&p)) return;
    says(&p, "ping\nfactorial 30\nping");
    shutdown(p.fd, SHUT_WR);
    heard(&p, "pong", "half-close: answers still come");
    heard(&p, "265252859812191058636308480000000", "half-close: factorial 30");
    heard_eof(&p, "half-close: the server closes after the answers");
    hang_up(&p);
}

static void check_line_limit(void)
{
    static char line[5000];
    struct peer p;
    if (!dial(&p)) return;
    memset(line, 'x', sizeof line);
    line[4096] = '\n';
    say(&p, line, 4097); /* 4096 bytes: the longest request allowed */
    heard_error(&p, "a 4096-byte line is a request (answered with an error)");
    says(&p, "ping\n");
    heard(&p, "pong", "the connection goes on after a 4096-byte line");
    line[4096] = 'x';
    line[4097] = '\n';
    say(&p, line, 4098); /* nothing after it: unread bytes would make the close a reset */
    heard_error(&p, "a 4097-byte line: error");
    heard_eof(&p, "a 4097-byte line: the server closes");
    hang_up(&p);
    if (!dial(&p)) return;
    memset(line, 'y', sizeof line); /* no newline at all: the server must not wait */
    say(&p, line, 4097);
    heard_error(&p, "4097 bytes without a newline: error");
    heard_eof(&p, "4097 bytes without a newline: the server closes");
    hang_up(&p);
}

/* The walk's lines: the expected set, DIR first, and every path after its
 * parent directory. */
static void check_walk_answer(struct peer *p, const char *dir, const char *name)
{
    struct loadgen_walk_sum want, got = {0, 0};
    char top[4200], msg[200] = "";
    size_t tlen = loadgen_escape(dir, strlen(dir), top), len;
    if (loadgen_walk_sum_dir(dir, &want) != 0) return;
    char **seen = calloc(4096, sizeof *seen);
    size_t n = 0;
    int rc;
    while ((rc = hear(p, &len)) == 1 && len > 0 && n < 4096) {
        loadgen_walk_sum_line(&got, p->line, len);
        const char *slash = strrchr(p->line, '/');
        size_t plen = slash ? (size_t)(slash - p->line) : 0;
        bool parent = false;
        for (size_t i = 0; i < n && !parent; i++)
            parent = seen[i] && strlen(seen[i]) == plen && !memcmp(seen[i], p->line, plen);
        if (plen == tlen - 1 && top[tlen - 1] == '/') parent = true; /* DIR/ then DIR/name */
        if (n == 0 && strcmp(p->line, top) != 0 && !*msg)
            snprintf(msg, sizeof msg, "first line '%.60s', expected '%.60s'", p->line, top);
        else if (n > 0 && strncmp(p->line, top, tlen) != 0 && !*msg)
            snprintf(msg, sizeof msg, "'%.60s' is not below DIR", p->line);
        else if (n > 0 && !parent && !*msg)
            snprintf(msg, sizeof msg, "'%.60s' comes before its directory", p->line);
        seen[n++] = strdup(p->line);
    }
    for (size_t i = 0; i < n; i++) free(seen[i]);
    free(seen);
    if (rc != 1 && !*msg) snprintf(msg, sizeof msg, "no empty line at the end");
    if (!*msg && (got.count != want.count || got.hash != want.hash))
        snprintf(msg, sizeof msg, "%llu paths, expected %llu (or different paths)",
                 (unsigned long long)got.count, (unsigned long long)want.count);
    verdict(!*msg, name, "%s", msg);
}

static void check_walk(const char *tree)
{
    struct peer p;
    char req[8400], path[4200];
    if (!dial(&p)) return;
    snprintf(req, sizeof req, "walk %s\n", tree);
    says(&p, req);
    check_walk_answer(&p, tree, "walk DIR: the paths of find, escaped, top-down");
    snprintf(path, sizeof path, "%s/", tree);
    snprintf(req, sizeof req, "walk %s\n", path);
    says(&p, req);
    check_walk_answer(&p, path, "walk DIR/: no double slash");
    snprintf(req, sizeof req, "walk %s/no-such-directory\n", tree);
    says(&p, req);
    heard_error(&p, "walk of a missing directory: error");
    snprintf(req, sizeof req, "walk %s/-starts-with-dash\n", tree);
    says(&p, req);
    heard_error(&p, "walk of a file: error");
    snprintf(req, sizeof req, "walk %s/link-to-top\n", tree);
    says(&p, req);
    heard_error(&p, "walk of a symbolic link: error");
    says(&p, "ping\n");
    heard(&p, "pong", "the connection goes on after walk errors");
    hang_up(&p);
}

/* A client that resets in the middle of a long answer costs the server
 * that connection only. */
static void check_reset(void)
{
    struct peer p;
    if (!dial(&p)) return;
    says(&p, "factorial 200000\n");
    struct linger lin = {1, 0};
    setsockopt(p.fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    hang_up(&p);
    usleep(100000);
    if (!dial(&p)) {
        verdict(false, "serves on after a reset", "cannot connect");
        return;
    }
    says(&p, "ping\n");
    heard(&p, "pong", "serves on after a client reset");
    hang_up(&p);
}

static void check_load(const char *tree, atomic_int *cancel)
{
    struct loadgen_phase ph = {.duration = MO_MSEC(300), .timeout = MO_SEC(60), .ask_stats = true};
    char *digits = NULL;
    ph.factorial_jobs = ph.walk_jobs = 2;
    ph.factorial_n = 5000;
    ph.walk_dir = tree;
    if (loadgen_factorial_digits(5000, &digits, &ph.factorial_len) != 0 ||
        loadgen_walk_sum_dir(tree, &ph.walk_expect) != 0)
        return;
    ph.factorial_digits = digits;
    struct loadgen_opts o = {g_host, g_port, 4, MO_MSEC(5), 0, cancel};
    struct loadgen_result r;
    struct loadgen_thread *t;
    memset(&r, 0, sizeof r);
    int err = loadgen_spawn(&t, &o, &ph, 1, &r);
    if (!err) err = loadgen_join(t);
    verdict(!err && r.ping.count > 100, "load client: pings, 2 factorials, 2 walks, stats",
            "%s (%zu round trips)", err ? r.error : "too few round trips", r.ping.count);
    loadgen_result_free(&r);
    free(digits);
}

int e2e_check(const char *host, unsigned port, const char *tree, atomic_int *cancel)
{
    if (host) g_host = host;
    g_port = port;
    check_basics();
    if (g_failed) return 1; /* not this protocol at all */
    check_errors();
    check_pipelining();
    check_half_close();
    check_line_limit();
    check_walk(tree);
    check_reset();
    check_load(tree, cancel);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
