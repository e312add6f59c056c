/* Generated trees for the walk's tests: small helpers that build files,
 * directories, links and special files under a temporary directory. */
#ifndef MORSEL_TEST_WALK_TREE_H
#define MORSEL_TEST_WALK_TREE_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A fresh directory under $TMPDIR (or /tmp), written to buf. */
static inline void tree_tmpdir(char *buf, size_t size)
{
    const char *base = getenv("TMPDIR");
    snprintf(buf, size, "%s/morsel-walk-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        exit(2);
    }
}

static inline void tree_rm(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", dir, dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

/* Path helpers: each takes a printf-style path relative to nothing. */
static inline int tree_path(char *buf, size_t size, const char *root, const char *rel)
{
    return snprintf(buf, size, "%s/%s", root, rel);
}

static inline void tree_dir(const char *root, const char *rel)
{
    char p[4200];
    tree_path(p, sizeof p, root, rel);
    if (mkdir(p, 0755) != 0) perror(p);
}

static inline void tree_file(const char *root, const char *rel)
{
    char p[4200];
    tree_path(p, sizeof p, root, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        perror(p);
    else
        close(fd);
}

static inline void tree_link(const char *root, const char *target, const char *rel)
{
    char p[4200];
    tree_path(p, sizeof p, root, rel);
    if (symlink(target, p) != 0) perror(p);
}

static inline void tree_fifo(const char *root, const char *rel)
{
    char p[4200];
    tree_path(p, sizeof p, root, rel);
    if (mkfifo(p, 0644) != 0) perror(p);
}

/* A bound unix socket left on disk (the socket itself is closed). */
static inline void tree_socket(const char *root, const char *rel)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if ((size_t)tree_path(sa.sun_path, sizeof sa.sun_path, root, rel) >= sizeof sa.sun_path) return;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) perror(sa.sun_path);
    if (fd >= 0) close(fd);
}

/* `depth` nested directories named "d" under root/rel, made relative to
 * each other so that the path length never matters. */
static inline void tree_deep(const char *root, const char *rel, int depth)
{
    char p[4200];
    tree_path(p, sizeof p, root, rel);
    int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (int i = 0; i < depth && fd >= 0; i++) {
        if (mkdirat(fd, "d", 0755) != 0) perror("mkdirat");
        int next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        close(fd);
        fd = next;
    }
    if (fd >= 0) close(fd);
}

/* `n` empty files named f0000000.. in root/rel. */
static inline void tree_many(const char *root, const char *rel, long n)
{
    char p[4200], name[32];
    tree_path(p, sizeof p, root, rel);
    int dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (long i = 0; i < n && dfd >= 0; i++) {
        snprintf(name, sizeof name, "f%07ld", i);
        int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) close(fd);
    }
    if (dfd >= 0) close(dfd);
}

/* How many descriptors this process has open. */
static inline int tree_open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) != -1) n++;
    return n;
}

#endif
