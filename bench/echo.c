/* Echo servers on morsel, libuv and libevent, driven by one load client:
 *   pingpong: 1 connection, one 64-byte message in flight: round trip
 *             (median and p99) and messages per second;
 *   flood:    64 connections, each with 16 messages of 64 bytes in flight
 *             (a connection sends a new message for each echo it reads):
 *             messages per second, round-trip p50 and p99;
 *   idle:     10,000 connections opened as fast as the client can, each
 *             echoing one byte once, then left idle: accepts per second
 *             (first connect to last echo) and the server's resident memory
 *             per connection (VmRSS after minus before, / 10,000; the
 *             kernel's socket memory is not in it).
 * Each server runs in a child process of its own, on 127.0.0.1; the client
 * is this process, one thread on epoll. The servers are what each library
 * offers for the job: morsel's mo_stream_write_copy() from the read
 * callback; libuv's uv_read_start() with a malloc'd buffer handed to
 * uv_write() (as libuv's own benchmark echo server does); libevent's
 * bufferevents, moving the input buffer to the output. Runs are
 * interleaved (morsel, libuv, libevent, morsel, ...) and medians compared.
 * Usage: bench_echo [pingpong|flood|idle|all] [reps] [seconds]. */
#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <morsel.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
#include <uv.h>

#define MSG       64
#define FLOOD_CON 64
#define FLOOD_WIN 16
#define IDLE_CON  10000

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- the servers (each in a child; it writes its port to `out`) ---- */

static void report_port(int out, int port)
{
    if (write(out, &port, sizeof port) != sizeof port) die("write port");
    close(out);
}

/* morsel */
static void mo_read(mo_stream_t *s, char *data, size_t len, void *arg)
{
    (void)arg;
    mo_stream_write_copy(s, data, len);
}

static void mo_eof(mo_stream_t *s, void *arg)
{
    (void)arg;
    mo_stream_close(s);
}

static const struct mo_stream_callbacks mo_cbs = {mo_read, mo_eof, NULL, NULL};

static void mo_accepted(mo_listener_t *l, mo_stream_t *s, void *arg)
{
    (void)l, (void)arg;
    mo_stream_set_callbacks(s, &mo_cbs, NULL);
    mo_stream_read_start(s);
}

static void serve_morsel(int out)
{
    mo_loop_t *loop;
    mo_addr_t a;
    mo_listener_t *l;
    if (mo_loop_new(&loop, 0) || mo_addr_parse(&a, "127.0.0.1:0")) die("morsel loop");
    struct mo_listen_opts o = {.backlog = 4096};
    if (mo_listen(loop, &a, &o, mo_accepted, NULL, &l) || mo_listener_addr(l, &a)) die("listen");
    report_port(out, mo_addr_port(&a));
    mo_loop_run(loop, MO_RUN_DEFAULT);
}

/* libuv, as its own benchmark's echo server */
typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} uv_wr;

static void uv_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(size);
    buf->len = size;
}

static void uv_closed(uv_handle_t *h)
{
    free(h);
}

static void uv_written(uv_write_t *req, int status)
{
    (void)status;
    uv_wr *w = (uv_wr *)req;
    free(w->buf.base);
    free(w);
}

static void uv_read_done(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) {
        free(buf->base);
        uv_close((uv_handle_t *)s, uv_closed);
        return;
    }
    if (n == 0) {
        free(buf->base);
        return;
    }
    uv_wr *w = malloc(sizeof *w);
    w->buf = uv_buf_init(buf->base, (unsigned)n);
    uv_write(&w->req, s, &w->buf, 1, uv_written);
}

static void uv_conn(uv_stream_t *server, int status)
{
    if (status) return;
    uv_tcp_t *c = malloc(sizeof *c);
    uv_tcp_init(server->loop, c);
    if (uv_accept(server, (uv_stream_t *)c) == 0)
        uv_read_start((uv_stream_t *)c, uv_alloc, uv_read_done);
    else
        uv_close((uv_handle_t *)c, uv_closed);
}

static void serve_libuv(int out)
{
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &server);
    if (uv_tcp_bind(&server, (struct sockaddr *)&a, 0) ||
        uv_listen((uv_stream_t *)&server, 4096, uv_conn))
        die("uv listen");
    int len = sizeof a;
    uv_tcp_getsockname(&server, (struct sockaddr *)&a, &len);
    report_port(out, ntohs(a.sin_port));
    uv_run(loop, UV_RUN_DEFAULT);
}

/* libevent: bufferevents */
static void ev_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void ev_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) bufferevent_free(bev);
}

static void ev_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    (void)l, (void)sa, (void)len;
    struct bufferevent *bev = bufferevent_socket_new(arg, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, ev_read, NULL, ev_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void serve_libevent(int out)
{
    struct event_base *base = event_base_new();
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *l =
        evconnlistener_new_bind(base, ev_accept, base, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE,
                                4096, (struct sockaddr *)&a, sizeof a);
    if (!l) die("evconnlistener");
    socklen_t len = sizeof a;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&a, &len);
    report_port(out, ntohs(a.sin_port));
    event_base_dispatch(base);
}

static const struct server {
    const char *name;
    void (*serve)(int out);
} servers[] = {{"morsel", serve_morsel}, {"libuv", serve_libuv}, {"libevent", serve_libevent}};
#define NSERVERS (sizeof servers / sizeof servers[0])

static pid_t start_server(const struct server *sv, int *port)
{
    int p[2];
    if (pipe(p)) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) { /* a fresh process: the client's memory must not be in its RSS */
        close(p[0]);
        char fd[16];
        snprintf(fd, sizeof fd, "%d", p[1]);
        execl("/proc/self/exe", "bench_echo", "--serve", sv->name, fd, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    if (read(p[0], port, sizeof *port) != sizeof *port) die("read port");
    close(p[0]);
    return pid;
}

static void stop_server(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Resident memory of a process, in bytes. */
static long rss_of(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb * 1024;
}

/* ---- the client ---- */

struct conn {
    int fd;
    int64_t sent_at[FLOOD_WIN]; /* send times of the messages in flight, FIFO */
    unsigned head, inflight;
    size_t partial; /* bytes of the next echo already read */
};

static int connect_to(int port, bool nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) die("socket");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) && errno != EINPROGRESS) die("connect");
    return fd;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

struct result {
    double msgs_per_s, p50_us, p99_us;
};

/* Sends k messages on c, stamping them. */
static void send_msgs(struct conn *c, unsigned k, int64_t now)
{
    static char buf[MSG * FLOOD_WIN];
    size_t len = (size_t)k * MSG, off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) continue; /* never for these sizes */
        if (n < 0) die("send");
        off += (size_t)n;
    }
    for (unsigned i = 0; i < k; i++) {
        c->sent_at[(c->head + c->inflight) % FLOOD_WIN] = now;
        c->inflight++;
    }
}

/* Runs nconn connections with `window` messages in flight each for `secs`
 * seconds (after a quarter second of warm-up). */
static struct result run_load(int port, int nconn, unsigned window, double secs)
{
    int ep = epoll_create1(0);
    struct conn *cs = calloc((size_t)nconn, sizeof *cs);
    size_t cap = 1 << 22, nrtt = 0;
    int64_t *rtt = malloc(cap * sizeof *rtt);
    for (int i = 0; i < nconn; i++) {
        cs[i].fd = connect_to(port, false);
        int one = 1;
        setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    int64_t start = bench_now(), measure_from = start + (int64_t)(0.25e9);
    int64_t end = measure_from + (int64_t)(secs * 1e9);
    for (int i = 0; i < nconn; i++) send_msgs(&cs[i], window, start);
    uint64_t done = 0;
    char buf[MSG * FLOOD_WIN * 4];
    struct epoll_event evs[128];
    for (int64_t now = start; now < end;) {
        int n = epoll_wait(ep, evs, 128, 100);
        now = bench_now();
        for (int e = 0; e < n; e++) {
            struct conn *c = evs[e].data.ptr;
            ssize_t r = recv(c->fd, buf, sizeof buf, 0);
            if (r <= 0) die("recv");
            size_t bytes = c->partial + (size_t)r;
            unsigned k = (unsigned)(bytes / MSG);
            c->partial = bytes % MSG;
            for (unsigned j = 0; j < k; j++) {
                if (now >= measure_from) {
                    if (nrtt < cap) rtt[nrtt++] = now - c->sent_at[c->head];
                    done++;
                }
                c->head = (c->head + 1) % FLOOD_WIN;
                c->inflight--;
            }
            if (k) send_msgs(c, k, now);
        }
    }
    for (int i = 0; i < nconn; i++) close(cs[i].fd);
    close(ep);
    qsort(rtt, nrtt, sizeof *rtt, cmp_i64);
    size_t i50 = nrtt / 2, i99 = nrtt * 99 / 100;
    struct result res = {(double)done / secs, nrtt ? (double)rtt[i50] / 1e3 : 0,
                         nrtt ? (double)rtt[i99] / 1e3 : 0};
    free(rtt);
    free(cs);
    return res;
}

/* ---- idle connections ---- */

struct idle_result {
    double accepts_per_s, accepts_per_cpu_s, bytes_per_conn;
};

/* CPU time (user + system) a process has used, in seconds. */
static double cpu_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    unsigned long ut = 0, st = 0;
    if (f &&
        fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        ut = st = 0;
    if (f) fclose(f);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static struct idle_result run_idle(pid_t pid, int port)
{
    usleep(100000);
    long before = rss_of(pid);
    double cpu0 = cpu_of(pid);
    int ep = epoll_create1(0);
    int *fds = malloc(IDLE_CON * sizeof *fds);
    int64_t t0 = bench_now();
    int opened = 0, echoed = 0, inflight = 0;
    struct epoll_event evs[256];
    /* At most 256 connects in flight: the backlog is not the measure. */
    while (echoed < IDLE_CON) {
        while (opened < IDLE_CON && inflight < 256) {
            int fd = connect_to(port, true);
            fds[opened] = fd;
            struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)opened};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            opened++;
            inflight++;
        }
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n <= 0) die("idle: stalled");
        for (int e = 0; e < n; e++) {
            int fd = fds[evs[e].data.u32];
            if (evs[e].events & EPOLLOUT) { /* connected: send the byte */
                if (send(fd, "x", 1, MSG_NOSIGNAL) != 1) die("idle send");
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[e].data.u32};
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
            } else { /* the echo: accepted and served */
                char b;
                if (recv(fd, &b, 1, 0) != 1) die("idle recv");
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                echoed++;
                inflight--;
            }
        }
    }
    double secs = (bench_now() - t0) / 1e9;
    double cpu = cpu_of(pid) - cpu0;
    usleep(200000);
    long after = rss_of(pid);
    for (int i = 0; i < IDLE_CON; i++) close(fds[i]);
    free(fds);
    close(ep);
    return (struct idle_result){IDLE_CON / secs, cpu > 0 ? IDLE_CON / cpu : 0,
                                (double)(after - before) / IDLE_CON};
}

/* ---- the comparisons ---- */

#define MAXREPS 32

static void compare_load(const char *title, int nconn, unsigned window, unsigned reps, double secs)
{
    double tput[NSERVERS][MAXREPS], p50[NSERVERS][MAXREPS], p99[NSERVERS][MAXREPS];
    for (unsigned r = 0; r < reps; r++) {
        for (size_t s = 0; s < NSERVERS; s++) {
            int port;
            pid_t pid = start_server(&servers[s], &port);
            struct result res = run_load(port, nconn, window, secs);
            stop_server(pid);
            tput[s][r] = res.msgs_per_s;
            p50[s][r] = res.p50_us;
            p99[s][r] = res.p99_us;
        }
    }
    double mt[NSERVERS], m50[NSERVERS], m99[NSERVERS];
    for (size_t s = 0; s < NSERVERS; s++) {
        mt[s] = bench_median(tput[s], reps);
        m50[s] = bench_median(p50[s], reps);
        m99[s] = bench_median(p99[s], reps);
    }
    printf("## %s: %d connection(s) x %u in flight, %.1f s each, median of %u interleaved runs\n",
           title, nconn, window, secs, reps);
    printf("%-10s %14s %12s %12s %14s %12s\n", "server", "messages/s", "p50 us", "p99 us",
           "morsel/this", "p99 vs");
    for (size_t s = 0; s < NSERVERS; s++)
        printf("%-10s %14.0f %12.1f %12.1f %13.2fx %11.2fx\n", servers[s].name, mt[s], m50[s],
               m99[s], mt[0] / mt[s], m99[0] / m99[s]);
    fflush(stdout);
}

static void compare_idle(unsigned reps)
{
    double rate[2][MAXREPS], per_cpu[2][MAXREPS], mem[2][MAXREPS];
    for (unsigned r = 0; r < reps; r++) {
        for (size_t s = 0; s < 2; s++) { /* morsel and libuv */
            int port;
            pid_t pid = start_server(&servers[s], &port);
            struct idle_result res = run_idle(pid, port);
            stop_server(pid);
            rate[s][r] = res.accepts_per_s;
            per_cpu[s][r] = res.accepts_per_cpu_s;
            mem[s][r] = res.bytes_per_conn;
        }
    }
    printf("## idle: %d connections, median of %u interleaved runs\n", IDLE_CON, reps);
    printf("%-10s %14s %20s %16s\n", "server", "accepts/s", "accepts/server-CPU-s", "RSS B/conn");
    double m[2][3];
    for (size_t s = 0; s < 2; s++) {
        m[s][0] = bench_median(rate[s], reps);
        m[s][1] = bench_median(per_cpu[s], reps);
        m[s][2] = bench_median(mem[s], reps);
        printf("%-10s %14.0f %20.0f %16.0f\n", servers[s].name, m[s][0], m[s][1], m[s][2]);
    }
    printf("morsel/libuv: accept rate %.2fx, per server CPU second %.2fx, memory per connection "
           "%.2fx\n",
           m[0][0] / m[1][0], m[0][1] / m[1][1], m[0][2] / m[1][2]);
    fflush(stdout);
}

/* The child: bench_echo --serve NAME FD. */
static int serve_child(const char *name, int out)
{
    raise_nofile();
    signal(SIGPIPE, SIG_IGN); /* libuv and libevent need it; morsel does not */
    for (size_t s = 0; s < NSERVERS; s++)
        if (!strcmp(servers[s].name, name)) servers[s].serve(out);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--serve")) return serve_child(argv[2], atoi(argv[3]));
    const char *what = argc > 1 ? argv[1] : "all";
    unsigned reps = argc > 2 ? (unsigned)atoi(argv[2]) : 5;
    double secs = argc > 3 ? atof(argv[3]) : 2.0;
    if (reps < 1 || reps > MAXREPS || secs <= 0) {
        fprintf(stderr, "usage: bench_echo [pingpong|flood|idle|all] [reps 1-32] [seconds]\n");
        return 2;
    }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    bool all = !strcmp(what, "all");
    if (all || !strcmp(what, "pingpong")) compare_load("pingpong", 1, 1, reps, secs);
    if (all || !strcmp(what, "flood")) compare_load("flood", FLOOD_CON, FLOOD_WIN, reps, secs);
    if (all || !strcmp(what, "idle")) compare_idle(reps);
    return 0;
}
