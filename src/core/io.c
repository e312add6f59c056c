/* File-descriptor readiness watchers on epoll (level-triggered).
 *
 * Each fd has a record with one watcher per direction; the epoll
 * registration of the fd is the union of its active directions. Records are
 * indexed by fd in an array that grows, so after any user callback the code
 * re-reads the record instead of keeping a pointer into the array. A
 * watcher id is (generation << 32) | (fd << 1) | direction; stopping a
 * watcher bumps the generation, which retires its id.
 */
#include "core_int.h"

#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MO__MAX_EVENTS 256

int mo__io_init(struct mo__io *io)
{
    memset(io, 0, sizeof(*io));
    io->epfd = epoll_create1(EPOLL_CLOEXEC);
    return io->epfd < 0 ? -errno : 0;
}

void mo__io_destroy(struct mo__io *io)
{
    if (io->epfd >= 0) close(io->epfd);
    mo__free(io->fds);
    memset(io, 0, sizeof(*io));
    io->epfd = -1;
}

static int io_reserve(struct mo__io *io, int fd)
{
    if ((uint32_t)fd < io->nfds) return 0;
    uint32_t n = io->nfds ? io->nfds : 64;
    while (n <= (uint32_t)fd) n *= 2;
    struct mo__fdrec *fds = mo__realloc(io->fds, n * sizeof(*fds));
    if (!fds) return MO_ENOMEM;
    for (uint32_t i = io->nfds; i < n; i++)
        fds[i] = (struct mo__fdrec){.dir = {{.gen = 1}, {.gen = 1}}};
    io->fds = fds;
    io->nfds = n;
    return 0;
}

static uint32_t io_wanted(const struct mo__fdrec *rec)
{
    return (rec->dir[0].active ? (uint32_t)EPOLLIN : 0) |
           (rec->dir[1].active ? (uint32_t)EPOLLOUT : 0);
}

/* Makes the kernel's registration of fd match the active watchers. */
static int io_sync(struct mo__io *io, int fd)
{
    struct mo__fdrec *rec = &io->fds[fd];
    uint32_t want = io_wanted(rec);
    if (want == rec->registered) return 0;
    struct epoll_event ev = {.events = want, .data.fd = fd};
    int op = !rec->registered ? EPOLL_CTL_ADD : want ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
    if (epoll_ctl(io->epfd, op, fd, &ev) != 0) {
        /* A watched fd that was closed is gone from epoll already: stopping
         * its last watcher must still succeed. */
        if (op != EPOLL_CTL_DEL || (errno != EBADF && errno != ENOENT)) return -errno;
    }
    rec->registered = want;
    return 0;
}

int mo_io_start(mo_loop_t *loop, int fd, unsigned events, mo_io_fn fn, void *arg, mo_io_id *idp)
{
    if (!loop || !fn || fd < 0 || (events != MO_READABLE && events != MO_WRITABLE))
        return MO_EINVAL;
    struct mo__io *io = &loop->io;
    if (fd == loop->wake.efd) return MO_EEXIST;
    int err = io_reserve(io, fd);
    if (err) return err;
    unsigned d = events == MO_WRITABLE;
    struct mo__io_dir *dir = &io->fds[fd].dir[d];
    if (dir->active) return MO_EEXIST;
    dir->active = 1;
    err = io_sync(io, fd);
    if (err) {
        dir->active = 0;
        return err;
    }
    dir->fn = fn;
    dir->arg = arg;
    io->active++;
    if (idp) *idp = ((uint64_t)dir->gen << 32) | ((uint64_t)fd << 1) | d;
    return 0;
}

int mo_io_stop(mo_loop_t *loop, mo_io_id id)
{
    if (!loop) return MO_EINVAL;
    struct mo__io *io = &loop->io;
    uint32_t gen = (uint32_t)(id >> 32);
    uint32_t fd = (uint32_t)id >> 1;
    unsigned d = (unsigned)id & 1;
    if (gen == 0 || fd >= io->nfds) return MO_ENOENT;
    struct mo__io_dir *dir = &io->fds[fd].dir[d];
    if (gen != dir->gen || !dir->active) return gen < dir->gen ? MO_EALREADY : MO_ENOENT;
    dir->active = 0;
    dir->fn = NULL;
    dir->arg = NULL;
    if (++dir->gen == 0) dir->gen = 1;
    io->active--;
    /* Deregistration fails only for fds the kernel cannot poll, which could
     * not have been registered: nothing to report. */
    (void)io_sync(io, (int)fd);
    return 0;
}

static void io_dispatch(mo_loop_t *loop, int fd, uint32_t revents)
{
    unsigned hup = (revents & (EPOLLERR | EPOLLHUP)) ? MO_HANGUP : 0;
    for (unsigned d = 0; d < 2; d++) {
        uint32_t mask = d == 0 ? EPOLLIN : EPOLLOUT;
        if (!(revents & mask) && !hup) continue;
        /* Re-read: a previous callback may have stopped this watcher, or
         * started others and grown the array. */
        if ((uint32_t)fd >= loop->io.nfds) return;
        struct mo__io_dir *dir = &loop->io.fds[fd].dir[d];
        if (!dir->active) continue;
        mo__dispatch_publish(loop, MO__FN(dir->fn));
        dir->fn(loop, fd, (d == 0 ? MO_READABLE : MO_WRITABLE) | hup, dir->arg);
    }
}

/* Waits with nanosecond precision where the kernel has epoll_pwait2 (5.11),
 * else with epoll_wait rounded up to whole milliseconds so that a timer is
 * never run early. */
static int io_wait(struct mo__io *io, struct epoll_event *events, int64_t timeout)
{
    int epfd = io->epfd;
    if (timeout < 0) return epoll_wait(epfd, events, MO__MAX_EVENTS, -1);
    if (timeout == 0) return epoll_wait(epfd, events, MO__MAX_EVENTS, 0);
    if (!io->no_pwait2) {
        struct timespec ts = {.tv_sec = timeout / MO_SEC(1), .tv_nsec = timeout % MO_SEC(1)};
        int n = epoll_pwait2(epfd, events, MO__MAX_EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS) return n;
        io->no_pwait2 = true;
    }
    int64_t ms = (timeout + MO_MSEC(1) - 1) / MO_MSEC(1);
    return epoll_wait(epfd, events, MO__MAX_EVENTS, ms > INT32_MAX ? INT32_MAX : (int)ms);
}

int mo__io_poll(mo_loop_t *loop, int64_t timeout)
{
    struct epoll_event events[MO__MAX_EVENTS];
    int n = io_wait(&loop->io, events, timeout);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    if (n > 0 && timeout != 0) mo__stats_begin(loop, mo_hrtime()); /* woke: a span begins */
    for (int i = 0; i < n; i++) {
        int fd = events[i].data.fd;
        if (fd == loop->wake.efd)
            mo__wake_read(&loop->wake);
        else
            io_dispatch(loop, fd, events[i].events);
    }
    return n;
}
