/* The harness of the walk's tests: see walk_harness.h. */
#include "walk_harness.h"

#include <dirent.h>
#include <grp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* ---- records ---- */

void recs_add(struct recs *r, char kind, const char *dir, const char *name, int type)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
        assert_non_null(r->v);
    }
    size_t len = strlen(dir) + strlen(name) + 16;
    r->v[r->n] = malloc(len);
    assert_non_null(r->v[r->n]);
    snprintf(r->v[r->n++], len, "%c%d %s//%s", kind, type, dir, name);
}

void recs_push(struct recs *r, const char *s, size_t n)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
        assert_non_null(r->v);
    }
    r->v[r->n] = malloc(n + 1);
    assert_non_null(r->v[r->n]);
    memcpy(r->v[r->n], s, n);
    r->v[r->n++][n] = '\0';
}

void recs_free(struct recs *r)
{
    for (size_t i = 0; i < r->n; i++) free(r->v[i]);
    free(r->v);
    *r = (struct recs){0};
}

bool recs_has(const struct recs *r, const char *fmt, ...)
{
    char rec[8400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rec, sizeof rec, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i], rec)) return true;
    return false;
}

size_t recs_count(const struct recs *r, const char *fmt, ...)
{
    char rec[8400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rec, sizeof rec, fmt, ap);
    va_end(ap);
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) n += !strcmp(r->v[i], rec);
    return n;
}

void recs_assert_same(const struct recs *a, const struct recs *b)
{
    for (size_t i = 0; i < a->n && i < b->n; i++) assert_string_equal(a->v[i], b->v[i]);
    assert_int_equal(a->n, b->n);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void recs_sort(struct recs *r)
{
    if (r->n > 1) qsort(r->v, r->n, sizeof(*r->v), cmp_str);
}

void recs_assert_same_set(struct recs *a, struct recs *b)
{
    recs_sort(a);
    recs_sort(b);
    recs_assert_same(a, b);
}

/* ---- a walk ---- */

/* A directory's depth as its path says: the names after top's path. */
static size_t path_depth(const struct walk_seen *s, const char *dirname)
{
    size_t n = strlen(dirname);
    if (n <= s->top_len) return 0;
    size_t depth = 1;
    for (const char *p = dirname + s->top_len + 1; *p; p++) depth += *p == '/';
    return depth;
}

void seen_visit(void *arg, const char *dirname, mo_walk_names *names)
{
    struct walk_seen *s = arg;
    assert_false(s->after_cancel);
    assert_int_equal(names->depth, path_depth(s, dirname));
    s->pieces++;
    s->dirs += !names->more;
    if (!names->more) recs_add(&s->recs, 'D', dirname, "", 0);
    for (size_t i = 0; i < names->count; i++) {
        if (s->prune && !strcmp(names->names[i].name, s->prune)) {
            mo_walk_names_remove(names, i--);
            continue;
        }
        assert_int_equal(strlen(names->names[i].name), names->names[i].len);
        recs_add(&s->recs, 'N', dirname, names->names[i].name, names->names[i].type);
        s->names++;
    }
    if (s->pieces % 8 == 0) { /* counting descriptors costs 4096 system calls */
        int fds = tree_open_fds();
        if (fds > s->max_fds) s->max_fds = fds;
    }
    if (s->remove_dir) {
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->remove_dir);
        assert_int_equal(system(cmd), 0);
        s->remove_dir = NULL;
    }
    if (s->cancel_after && s->dirs == s->cancel_after) {
        assert_ok(mo__walk_cancel(s->walk));
        s->after_cancel = true;
    }
    if (s->hook) s->hook(s, dirname, names);
}

void seen_error(void *arg, const char *path, int err)
{
    recs_add(&((struct walk_seen *)arg)->errors, 'E', path, "", -err);
}

void seen_done(void *arg, int err, const char *path, const mo_walk_totals *totals)
{
    struct walk_seen *s = arg;
    (void)totals;
    s->done_calls++;
    s->done_err = err;
    snprintf(s->done_path, sizeof s->done_path, "%s", path ? path : "");
}

/* Leaves only `spare` descriptors free from now on: the lowest limit with
 * that many free below it (descriptors above a limit stay usable). */
static void starve(int spare)
{
    int limit = 0;
    for (int free = 0; free <= spare; limit++) free += fcntl(limit, F_GETFD) == -1;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = (rlim_t)(limit - 1);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

void walk_run(struct walk_seen *s, const char *top, const mo_walk_opts *opts)
{
    s->fds_before = tree_open_fds();
    s->top_len = strlen(top);
    s->loop = mo_test_loop();
    s->done_err = 1;
    if (s->starve) starve(s->spare);
    assert_ok(mo__walk_start(s->loop, top, seen_visit, s, opts, seen_done, s, &s->walk));
    assert_int_equal(s->done_calls, 0); /* never from within the call */
    if (s->limit_fds) mo__walk_par_limit_fds(s->walk, s->limit_fds);
    assert_ok(mo_loop_run(s->loop, MO_RUN_DEFAULT));
    assert_int_equal(s->done_calls, 1);
    mo_loop_free(s->loop);
    s->loop = NULL;
    assert_int_equal(tree_open_fds(), s->fds_before);
}

void seen_free(struct walk_seen *s)
{
    recs_free(&s->recs);
    recs_free(&s->errors);
}

static bool recs_same_set(struct recs *a, struct recs *b)
{
    recs_sort(a);
    recs_sort(b);
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0) return false;
    return true;
}

void walk_in_child(struct walk_seen *seen, const char *top, const mo_walk_opts *opts,
                   struct child_walk *out)
{
    struct recs ref = {0};
    ref_walk(&ref, top);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        if (seen->as_nobody && getuid() == 0)
            assert_true(!setgroups(0, NULL) && !setgid(65534) && !setuid(65534));
        walk_run(seen, top, opts);
        struct child_walk r;
        memset(&r, 0, sizeof r); /* padding included: it is written out */
        r.done_err = seen->done_err;
        r.dirs = seen->dirs;
        r.names = seen->names;
        r.errors = (long)seen->errors.n;
        r.same = recs_same_set(&seen->recs, &ref);
        memcpy(r.done_path, seen->done_path, sizeof r.done_path);
        _exit(write(pipefd[1], &r, sizeof r) == sizeof r ? 0 : 1);
    }
    close(pipefd[1]);
    ssize_t n = read(pipefd[0], out, sizeof *out);
    close(pipefd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(n, sizeof *out);
    recs_free(&ref);
}

/* ---- what find says ---- */

void seen_paths(const struct walk_seen *s, const char *top, int type, struct recs *out)
{
    if (type == -1 || type == MO_WALK_DIR) recs_push(out, top, strlen(top));
    for (size_t i = 0; i < s->recs.n; i++) {
        const char *rec = s->recs.v[i];
        if (rec[0] != 'N' || (type != -1 && atoi(rec + 1) != type)) continue;
        const char *dir = strchr(rec, ' ') + 1, *sep = NULL;
        for (const char *p = dir; (p = strstr(p, "//")) != NULL; p++) sep = p;
        assert_non_null(sep);
        char path[8400];
        size_t dlen = (size_t)(sep - dir);
        int n = snprintf(path, sizeof path, "%.*s%s%s", (int)dlen, dir,
                         dlen && dir[dlen - 1] == '/' ? "" : "/", sep + 2);
        recs_push(out, path, (size_t)n);
    }
}

void seen_error_paths(const struct walk_seen *s, struct recs *out)
{
    for (size_t i = 0; i < s->errors.n; i++) {
        const char *path = strchr(s->errors.v[i], ' ') + 1;
        recs_push(out, path, strlen(path) - 2); /* without the "//" */
    }
}

/* The first path find quoted in a message line, as it quotes in the C
 * locale: in single quotes, odd bytes as C escapes (\n, \377). */
static size_t find_unquote(const char *line, char *out, size_t size)
{
    const char *q = strchr(line, '\'');
    size_t n = 0;
    for (q = q ? q + 1 : ""; *q && *q != '\'' && n + 1 < size; q++) {
        if (*q != '\\') {
            out[n++] = *q;
        } else if (q[1] >= '0' && q[1] <= '7') {
            out[n++] = (char)((q[1] - '0') * 64 + (q[2] - '0') * 8 + (q[3] - '0'));
            q += 3;
        } else {
            q++;
            out[n++] = *q == 'n' ? '\n' : *q == 't' ? '\t' : *q == 'r' ? '\r' : *q;
        }
    }
    return n;
}

void find_run(const char *args, struct recs *paths, struct recs *errors)
{
    char err_file[] = "/tmp/morsel-find-XXXXXX", cmd[4400];
    int efd = mkstemp(err_file);
    assert_true(efd >= 0);
    snprintf(cmd, sizeof cmd, "LC_ALL=C find %s -print0 2>%s", args, err_file);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    for (ssize_t n; (n = getdelim(&line, &cap, '\0', f)) > 0;)
        recs_push(paths, line, (size_t)n - 1);
    pclose(f);
    FILE *e = fdopen(efd, "r");
    while (getline(&line, &cap, e) > 0) {
        char path[4200];
        size_t len = find_unquote(line, path, sizeof path);
        if (len) recs_push(errors, path, len);
    }
    fclose(e);
    unlink(err_file);
    free(line);
}

/* A bit of everything: odd names, links, special files, a deep chain, a
 * large directory, and a wide part. */
void make_tree(const char *root)
{
    const char *dirs[] = {"a",     "a/b",        "a/b/c",     "a/empty",
                          "z",     "with space", "new\nline", "bad\xff\xfeutf8",
                          "-dash", ".hidden",    "wide"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) tree_dir(root, dirs[i]);
    tree_file(root, "a/b/c/leaf");
    tree_file(root, "new\nline/in\nside");
    tree_link(root, "a", "link-to-dir");
    tree_link(root, "loop", "loop");
    tree_link(root, "..", "z/up");
    tree_fifo(root, "fifo");
    tree_socket(root, "sock");
    tree_deep(root, "a/b", 200);
    tree_many(root, "z", 3000);
    char p[64];
    for (int i = 0; i < 30; i++) {
        snprintf(p, sizeof p, "wide/w%02d", i);
        tree_dir(root, p);
        for (int k = 0; k < 5; k++) {
            snprintf(p, sizeof p, "wide/w%02d/s%d", i, k);
            tree_dir(root, p);
            snprintf(p, sizeof p, "wide/w%02d/f%d", i, k);
            tree_file(root, p);
            snprintf(p, sizeof p, "wide/w%02d/s%d/f", i, k);
            tree_file(root, p);
        }
    }
}

void make_links(const char *root)
{
    const char *dirs[] = {"a", "a/b", "z", "x", "new\nline", "with space", "bad\xff\xfeutf8"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) tree_dir(root, dirs[i]);
    tree_file(root, "a/f");
    tree_file(root, "with space/f f");
    tree_link(root, "..", "z/up");          /* to an ancestor */
    tree_link(root, ".", "a/b/self");       /* to the directory itself */
    tree_link(root, "../../z", "a/b/toz");  /* beside: entered; its up is a loop */
    tree_link(root, "loop", "loop");        /* stat() says ELOOP */
    tree_link(root, "nowhere", "dangling"); /* type l */
    tree_link(root, "a/f", "to-file");      /* type f */
    tree_link(root, "l2", "l1");            /* a chain of links */
    tree_link(root, "a", "l2");
    tree_link(root, "../a", "x/l"); /* ".." of it is not x */
    tree_link(root, "../a", "new\nline/in\nside");
    tree_link(root, "nowhere", "bad\xff\xfeutf8/dang ling");
    tree_fifo(root, "fifo");
    tree_socket(root, "sock");
    tree_deep(root, "a", MO_WALK_MAX_FDS + 8);
}

static void compare_typed(const struct walk_seen *s, const char *top, int type, const char *args,
                          char letter)
{
    struct recs mine = {0}, theirs = {0}, errors = {0};
    char find_args[4400];
    snprintf(find_args, sizeof find_args, "%s -type %c", args, letter);
    seen_paths(s, top, type, &mine);
    find_run(find_args, &theirs, &errors);
    recs_assert_same_set(&mine, &theirs);
    recs_free(&mine);
    recs_free(&theirs);
    recs_free(&errors);
}

void walk_like_find(const char *top, const mo_walk_opts *opts, const char *find_args)
{
    struct walk_seen s = {0};
    mo_walk_opts o = *opts;
    o.on_error = seen_error;
    walk_run(&s, top, &o);
    assert_mo(0, s.done_err);
    struct recs mine = {0}, theirs = {0}, my_errors = {0}, their_errors = {0};
    seen_paths(&s, top, -1, &mine);
    seen_error_paths(&s, &my_errors);
    find_run(find_args, &theirs, &their_errors);
    recs_assert_same_set(&mine, &theirs);
    recs_assert_same_set(&my_errors, &their_errors);
    compare_typed(&s, top, MO_WALK_DIR, find_args, 'd');
    compare_typed(&s, top, MO_WALK_REG, find_args, 'f');
    compare_typed(&s, top, MO_WALK_LNK, find_args, 'l');
    recs_free(&mine);
    recs_free(&theirs);
    recs_free(&my_errors);
    recs_free(&their_errors);
    seen_free(&s);
}

bool mount_in_tree(const char *root, const char *rel)
{
    char p[4200];
    tree_path(p, sizeof p, root, rel);
    return unshare(CLONE_NEWNS) == 0 && mount("none", "/", "", MS_REC | MS_PRIVATE, NULL) == 0 &&
           mount("none", p, "tmpfs", 0, "size=1m") == 0;
}

void unmount_in_tree(const char *root, const char *rel)
{
    char p[4200];
    tree_path(p, sizeof p, root, rel);
    assert_int_equal(umount2(p, MNT_DETACH), 0);
}

/* ---- checks made in both modes ---- */

void check_top_errors(unsigned mode)
{
    char root[256], p[300];
    tree_tmpdir(root, sizeof root);
    tree_file(root, "file");
    tree_dir(root, "dir");
    tree_link(root, "dir", "link");
    struct {
        const char *rel;
        int err;
        long dirs;
    } cases[] = {
        {"nope", MO_ENOENT, 0}, {"file", MO_ENOTDIR, 0}, {"link", MO_ENOTDIR, 0}, {"link/", 0, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct walk_seen s = {0};
        mo_walk_opts opts = {.flags = mode};
        snprintf(p, sizeof p, "%s/%s", root, cases[i].rel);
        walk_run(&s, p, &opts);
        assert_mo(cases[i].err, s.done_err);
        assert_string_equal(s.done_path, cases[i].err ? p : "");
        assert_int_equal(s.dirs, cases[i].dirs);
        seen_free(&s);
    }
    tree_rm(root);
}

void check_removed_during_walk(unsigned mode)
{
    char root[256], gone[300];
    for (int keep_going = 0; keep_going < 2; keep_going++) {
        tree_tmpdir(root, sizeof root);
        make_tree(root);
        snprintf(gone, sizeof gone, "%s/a", root);
        struct walk_seen s = {.remove_dir = gone};
        mo_walk_opts opts = {.flags = mode, .on_error = keep_going ? seen_error : NULL};
        walk_run(&s, root, &opts);
        if (keep_going) {
            assert_int_equal(s.done_err, 0);
            assert_int_equal(s.errors.n, 1);
            assert_true(recs_has(&s.errors, "E%d %s//", ENOENT, gone));
            struct recs now = {0};
            ref_walk(&now, root);
            recs_add(&now, 'N', root, "a", MO_WALK_DIR); /* listed before it went */
            recs_assert_same_set(&s.recs, &now);
            recs_free(&now);
        } else {
            assert_mo(MO_ENOENT, s.done_err);
            assert_string_equal(s.done_path, gone);
            assert_int_equal(s.errors.n, 0);
        }
        seen_free(&s);
        tree_rm(root);
    }
}

void check_unreadable(unsigned mode)
{
    char root[256], locked[300];
    tree_tmpdir(root, sizeof root);
    assert_int_equal(chmod(root, 0755), 0);
    tree_dir(root, "open");
    tree_dir(root, "locked");
    tree_dir(root, "locked/inner");
    tree_dir(root, "z");
    snprintf(locked, sizeof locked, "%s/locked", root);
    assert_int_equal(chmod(locked, 0), 0);
    for (int keep_going = 0; keep_going < 2; keep_going++) {
        struct walk_seen s = {.as_nobody = true};
        mo_walk_opts opts = {.flags = mode, .on_error = keep_going ? seen_error : NULL};
        struct child_walk r;
        walk_in_child(&s, root, &opts, &r);
        assert_mo(keep_going ? 0 : MO_EACCES, r.done_err);
        assert_string_equal(r.done_path, keep_going ? "" : locked);
        assert_int_equal(r.errors, keep_going);
        if (keep_going) assert_int_equal(r.dirs, 3); /* root open z */
    }
    tree_rm(root);
}

void check_few_descriptors(unsigned mode, int spare)
{
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_tree(root);
    for (unsigned pieces = 0; pieces <= MO_WALK_PIECES; pieces += MO_WALK_PIECES) {
        struct walk_seen s = {.starve = true, .spare = spare};
        mo_walk_opts opts = {.flags = mode | pieces};
        struct child_walk r;
        walk_in_child(&s, root, &opts, &r);
        assert_mo(0, r.done_err);
        assert_int_equal(r.errors, 0);
        assert_true(r.same);
    }
    tree_rm(root);
}

struct hog {
    long take_at, give_at;
    int leave;
    int fds[4096];
    int n;
};

static void hog_fds(struct walk_seen *s, const char *dirname, mo_walk_names *names)
{
    (void)dirname;
    (void)names;
    struct hog *h = s->hook_arg;
    if (s->pieces == h->take_at) {
        for (int fd; h->n < 4096 && (fd = dup(0)) >= 0;) h->fds[h->n++] = fd;
        assert_true(errno == EMFILE);
        for (int i = 0; i < h->leave; i++) close(h->fds[--h->n]);
    }
    if (s->pieces == h->give_at)
        while (h->n) close(h->fds[--h->n]);
}

void check_descriptors_run_out(unsigned mode, long take_at, long give_at, int leave)
{
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_tree(root);
    struct hog hog = {take_at, give_at, leave, {0}, 0};
    struct walk_seen s = {.starve = true, .spare = 600, .hook = hog_fds, .hook_arg = &hog};
    mo_walk_opts opts = {.flags = mode};
    struct child_walk r;
    walk_in_child(&s, root, &opts, &r);
    assert_mo(0, r.done_err);
    assert_true(r.same);
    tree_rm(root);
}

void check_no_descriptor_left(unsigned mode)
{
    char root[256];
    tree_tmpdir(root, sizeof root);
    make_tree(root);
    for (int keep_going = 0; keep_going < 2; keep_going++) {
        struct walk_seen s = {.starve = true, .spare = 0};
        mo_walk_opts opts = {.flags = mode, .on_error = keep_going ? seen_error : NULL};
        struct child_walk r;
        walk_in_child(&s, root, &opts, &r);
        assert_mo(keep_going ? 0 : MO_EMFILE, r.done_err);
        assert_int_equal(r.errors, keep_going);
        assert_int_equal(r.dirs, 0);
        assert_string_equal(r.done_path, keep_going ? "" : root);
    }
    tree_rm(root);
}

void check_follow_like_find(unsigned mode)
{
    char root[256], top[300], args[400];
    tree_tmpdir(root, sizeof root);
    make_links(root);
    for (unsigned pieces = 0; pieces <= MO_WALK_PIECES; pieces += MO_WALK_PIECES) {
        mo_walk_opts follow = {.flags = mode | MO_WALK_FOLLOW | pieces};
        snprintf(args, sizeof args, "-L '%s'", root);
        walk_like_find(root, &follow, args);
        snprintf(top, sizeof top, "%s/l1", root);
        snprintf(args, sizeof args, "-L '%s'", top);
        walk_like_find(top, &follow, args);
    }
    mo_walk_opts plain = {.flags = mode};
    snprintf(args, sizeof args, "'%s'", root);
    walk_like_find(root, &plain, args);
    tree_rm(root);
}

void check_follow_loop_stops(unsigned mode)
{
    char root[256], p[300];
    tree_tmpdir(root, sizeof root);
    tree_dir(root, "z");
    tree_link(root, "..", "z/up");
    struct walk_seen s = {0};
    mo_walk_opts opts = {.flags = mode | MO_WALK_FOLLOW};
    walk_run(&s, root, &opts);
    assert_mo(MO_ELOOP, s.done_err);
    snprintf(p, sizeof p, "%s/z/up", root);
    assert_string_equal(s.done_path, p);
    seen_free(&s);
    tree_rm(root);
}

void check_follow_unsearchable_like_find(unsigned mode)
{
    char root[256], args[300];
    tree_tmpdir(root, sizeof root);
    assert_int_equal(chmod(root, 0755), 0);
    tree_dir(root, "locked");
    tree_dir(root, "locked/in");
    tree_file(root, "locked/f");
    tree_dir(root, "d");
    tree_link(root, "locked/f", "l");
    tree_link(root, "locked/in", "ld");
    tree_link(root, "nowhere", "dangling");
    char locked[300];
    snprintf(locked, sizeof locked, "%s/locked", root);
    assert_int_equal(chmod(locked, 0700), 0); /* root's: nobody may not search it */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (getuid() == 0) assert_true(!setgroups(0, NULL) && !setgid(65534) && !setuid(65534));
        mo_walk_opts follow = {.flags = mode | MO_WALK_FOLLOW};
        snprintf(args, sizeof args, "-L '%s'", root);
        walk_like_find(root, &follow, args);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tree_rm(root);
}

void check_xdev_like_find(unsigned mode)
{
    char root[256], args[400];
    tree_tmpdir(root, sizeof root);
    tree_dir(root, "a");
    tree_file(root, "a/f");
    tree_dir(root, "m");
    tree_link(root, "m", "lm");
    if (!mount_in_tree(root, "m")) {
        tree_rm(root);
        skip(); /* not permitted to mount here */
    }
    tree_dir(root, "m/in");
    tree_file(root, "m/in/f");
    mo_walk_opts xdev = {.flags = mode | MO_WALK_XDEV},
                 follow = {.flags = mode | MO_WALK_XDEV | MO_WALK_FOLLOW}, plain = {.flags = mode};
    snprintf(args, sizeof args, "'%s' -xdev", root);
    walk_like_find(root, &xdev, args);
    snprintf(args, sizeof args, "-L '%s' -xdev", root);
    walk_like_find(root, &follow, args);
    snprintf(args, sizeof args, "'%s'", root); /* without it, the mount's files are listed */
    walk_like_find(root, &plain, args);
    unmount_in_tree(root, "m");
    tree_rm(root);
}

/* ---- the reference ---- */

static int ref_type(int dfd, const struct dirent *d)
{
    struct stat st;
    if (d->d_type != DT_UNKNOWN) return d->d_type;
    return fstatat(dfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? (int)IFTODT(st.st_mode) : 0;
}

void ref_walk(struct recs *r, const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    assert_true(fd >= 0);
    DIR *d = fdopendir(fd);
    assert_non_null(d);
    char **subs = NULL;
    size_t nsubs = 0;
    recs_add(r, 'D', dir, "", 0);
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        int type = ref_type(dirfd(d), e);
        recs_add(r, 'N', dir, e->d_name, type);
        if (type != DT_DIR) continue;
        char **more = realloc(subs, (nsubs + 1) * sizeof(*subs));
        assert_non_null(more);
        subs = more;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        subs[nsubs] = malloc(n);
        snprintf(subs[nsubs++], n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
                 e->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < nsubs; i++) {
        ref_walk(r, subs[i]);
        free(subs[i]);
    }
    free(subs);
}

int proc_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* not the one that reads it */
}
