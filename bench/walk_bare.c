/* bench_walk_bare DIR...: the limit for `morsel walk`. The least a walker
 * that prints what find prints can do: openat relative to the parent,
 * getdents64 in 64 KiB batches, d_type, paths formatted into a 1 MiB output
 * buffer written in blocks. No event loop, no slicing, no error reporting
 * beyond skipping what cannot be opened, and plain recursion. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BUF  (64 * 1024)
#define OUTB (1024 * 1024)

struct kdirent64 {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static char out[OUTB];
static size_t outlen;
static char buf[BUF];

static void flush(void)
{
    for (size_t off = 0; off < outlen;) {
        ssize_t n = write(1, out + off, outlen - off);
        if (n <= 0) exit(1);
        off += (size_t)n;
    }
    outlen = 0;
}

static void emit(const char *path, size_t plen, const char *name, size_t len)
{
    if (outlen + plen + len + 2 > OUTB) flush();
    memcpy(out + outlen, path, plen);
    outlen += plen;
    if (plen && path[plen - 1] != '/') out[outlen++] = '/';
    memcpy(out + outlen, name, len);
    outlen += len;
    out[outlen++] = '\n';
}

static void walk(int fd, char *path, size_t plen)
{
    char *subs = NULL;
    size_t used = 0, cap = 0;
    long n;
    while ((n = syscall(SYS_getdents64, fd, buf, BUF)) > 0) {
        for (long off = 0; off < n;) {
            struct kdirent64 *d = (struct kdirent64 *)(buf + off);
            off += d->d_reclen;
            const char *s = d->d_name;
            if (s[0] == '.' && (!s[1] || (s[1] == '.' && !s[2]))) continue;
            size_t len = strlen(s);
            emit(path, plen, s, len);
            if (d->d_type != DT_DIR) continue;
            if (used + len + 1 > cap) subs = realloc(subs, cap = (used + len + 1) * 2);
            memcpy(subs + used, s, len + 1);
            used += len + 1;
        }
    }
    for (size_t off = 0; off < used; off += strlen(subs + off) + 1) {
        int cfd = openat(fd, subs + off, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) continue;
        size_t len = strlen(subs + off), clen = plen + (path[plen - 1] != '/') + len;
        char *cpath = malloc(clen + 1);
        memcpy(cpath, path, plen);
        if (path[plen - 1] != '/') cpath[plen] = '/';
        memcpy(cpath + clen - len, subs + off, len + 1);
        walk(cfd, cpath, clen);
        free(cpath);
        close(cfd);
    }
    free(subs);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        size_t plen = strlen(argv[i]);
        memcpy(out + outlen, argv[i], plen);
        outlen += plen;
        out[outlen++] = '\n';
        int fd = open(argv[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) walk(fd, argv[i], plen);
        if (fd >= 0) close(fd);
    }
    flush();
    return 0;
}
