/* What both walk engines do with a directory: open it the walk's way,
 * recognise it again by (device, inode), re-open it by path, join paths as
 * os.path.join does, and read and type its listing (getdents64 records
 * read in place, one name per record, d_type trusted, a stat() only where
 * the file system gives no type or a symlink is to be followed).
 *
 * Nothing here touches a walk: each function works on what it is given, so
 * that the loop thread and the parallel engine's workers share them. */
#include "walk/walk_int.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel's record, as getdents64 writes it. */
struct kdirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* ---- identity ---- */

int mo__walk_id_of(int fd, struct mo__walk_id *id)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return -errno;
    *id = (struct mo__walk_id){st.st_dev, st.st_ino};
    return 0;
}

bool mo__walk_evict(int *fd, struct mo__walk_id *id)
{
    if (*fd < 0 || mo__walk_id_of(*fd, id) != 0) return false;
    close(*fd);
    *fd = -1;
    return true;
}

/* The end of the next piece of rel[at, len) to open in one call: all of
 * it if it is shorter than PATH_MAX, else up to a "/" before that. 0 if a
 * name is longer than PATH_MAX, which no file system allows. */
static size_t reopen_piece(const char *rel, size_t at, size_t len)
{
    if (len - at < PATH_MAX) return len;
    size_t end = at + PATH_MAX - 1;
    while (end > at && rel[end] != '/') end--;
    return end > at ? end : 0;
}

int mo__walk_reopen(int base, char *rel, size_t len, int oflags, const struct mo__walk_id *id)
{
    int fd = base;
    for (size_t at = 0; at < len;) {
        size_t end = reopen_piece(rel, at, len);
        if (!end) return MO_ENAMETOOLONG;
        char c = rel[end];
        rel[end] = '\0';
        int next = openat(fd, rel + at, oflags);
        int err = -errno;
        rel[end] = c;
        if (fd != base) close(fd);
        /* O_NOFOLLOW meeting a symlink: the directory was replaced. */
        if (next < 0) return err == MO_ELOOP && (oflags & O_NOFOLLOW) ? MO_ENOENT : err;
        fd = next;
        for (at = end; at < len && rel[at] == '/';) at++;
    }
    struct mo__walk_id now = {0, 0};
    if (fd == base) return MO_EINVAL; /* rel was empty or only "/" */
    if (mo__walk_id_of(fd, &now) != 0 || !mo__walk_id_eq(&now, id)) {
        close(fd);
        return MO_ENOENT;
    }
    return fd;
}

/* ---- paths ---- */

size_t mo__walk_join(char *dst, const char *dir, size_t dlen, const char *name, size_t len)
{
    size_t n = mo__walk_join_len(dir, dlen, len);
    if (dst != dir) memcpy(dst, dir, dlen);
    if (n > dlen + len) dst[dlen] = '/';
    memcpy(dst + n - len, name, len);
    dst[n] = '\0';
    return n;
}

/* ---- listings ---- */

/* The records moved from `old` to l->buf: the names follow them. */
static void names_follow(struct mo__walk_list *l, uintptr_t old)
{
    if ((uintptr_t)l->buf == old) return;
    for (size_t i = 0; i < l->count; i++)
        l->names[i].name = l->buf + ((uintptr_t)l->names[i].name - old);
}

long mo__walk_list_read(struct mo__walk_list *l, int fd, size_t want)
{
    uintptr_t old = (uintptr_t)l->buf;
    if (mo__walk_grow((void **)&l->buf, &l->cap, l->used + want, 1) != 0) return MO_ENOMEM;
    names_follow(l, old);
    long n = syscall(SYS_getdents64, fd, l->buf + l->used, want);
    if (n < 0) return -errno;
    l->used += (size_t)n;
    return n;
}

/* The type of a name whose record says DT_UNKNOWN, or, when the walk
 * follows symlinks (find -L), of a symlink or a directory: a symlink's
 * target's type, DT_LNK if it dangles (ENOENT); marked MO_ELOOP for a
 * symlink that never resolves and for a directory already on the path
 * (which a real directory can be once a symlink above it was followed);
 * marked with the error for a symlink stat() fails on otherwise (EACCES).
 * A directory stat() fails on stays one: opening it reports why. */
static uint8_t name_type(const struct mo__walk_scan *scan, const char *name, uint8_t type)
{
    struct stat st;
    if (type == DT_UNKNOWN) {
        if (fstatat(scan->dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return DT_UNKNOWN;
        type = (uint8_t)IFTODT(st.st_mode);
    }
    if (!(scan->flags & MO_WALK_FOLLOW) || (type != DT_LNK && type != DT_DIR)) return type;
    if (fstatat(scan->dfd, name, &st, 0) != 0) {
        int err = -errno;
        if (err == MO_ENOENT || (type == DT_DIR && err != MO_ELOOP)) return type;
        return mo__walk_mark(err);
    }
    struct mo__walk_id id = {st.st_dev, st.st_ino};
    if (S_ISDIR(st.st_mode) && scan->ancestor(scan->ctx, &id)) return mo__walk_mark(MO_ELOOP);
    return (uint8_t)IFTODT(st.st_mode);
}

int mo__walk_list_parse(struct mo__walk_list *l, size_t from, struct mo__walk_scan *scan)
{
    /* A record is at least 24 bytes and holds its name and NUL. */
    size_t most = l->count + (l->used - from) / 24 + 1;
    if (mo__walk_grow((void **)&l->names, &l->ncap, most, sizeof(mo_walk_name)) != 0)
        return MO_ENOMEM;
    /* The d_types to resolve with a stat: bit t for type t (all < 16).
     * Following symlinks, links and directories too. */
    unsigned resolve = 1u << DT_UNKNOWN;
    if (scan->flags & MO_WALK_FOLLOW) resolve |= 1u << DT_LNK | 1u << DT_DIR;
    /* In locals: stores to names[] could alias the structs' fields. */
    mo_walk_name *names = l->names;
    const char *buf = l->buf;
    size_t count = l->count, dirs = 0, marked = 0;
    for (size_t off = from, end = l->used; off < end;) {
        const struct kdirent64 *d = (const struct kdirent64 *)(buf + off);
        off += d->d_reclen;
        const char *s = d->d_name;
        if (s[0] == '.' && (s[1] == '\0' || (s[1] == '.' && s[2] == '\0'))) continue;
        uint8_t type = d->d_type;
        if (resolve & 1u << (type & 15)) {
            type = name_type(scan, s, type);
            marked += type >= MO__WALK_MARK;
        }
        dirs += type == DT_DIR;
        names[count++] = (mo_walk_name){s, (uint32_t)strlen(s), type};
    }
    l->count = count;
    scan->dirs += dirs;
    scan->marked += marked;
    return 0;
}

void mo__walk_list_fit(struct mo__walk_list *l)
{
    if (l->cap - l->used < MO__WALK_SLACK || !l->used) return;
    uintptr_t old = (uintptr_t)l->buf;
    char *p = mo__realloc(l->buf, l->used);
    if (!p) return; /* it stays as large as it was */
    l->buf = p;
    l->cap = l->used;
    names_follow(l, old);
}

void mo__walk_list_reset(struct mo__walk_list *l, size_t keep)
{
    l->used = l->count = 0;
    mo__walk_shrink((void **)&l->buf, &l->cap, 1, keep);
    mo__walk_shrink((void **)&l->names, &l->ncap, sizeof(mo_walk_name), keep);
}

void mo__walk_list_free(struct mo__walk_list *l)
{
    mo__free(l->buf);
    mo__free(l->names);
    *l = (struct mo__walk_list){0};
}
