/* The seed's os_path_walk, as a recursive coroutine.
 *
 * Twisted's version is a generator: walk() lists a directory, calls
 * visit(arg, dirname, names), then yields before each name and recurses
 * into subdirectories; callLater(0) drives it, so the loop is never held
 * longer than one listing. Here the generator is a coroutine and
 * mo_yield() is the `yield None`; the cooperator drives it in time slices.
 * Two fixes to the seed: a name is tested on the joined path, not on the
 * bare name (the seed's os.path.isdir(file) looks in the current
 * directory), and symbolic links are not followed (lstat), so a link loop
 * cannot make the walk endless. As in the seed, the first error stops the
 * walk and fails its Deferred, here with the errno and the path.
 *
 *   example_os_path_walk [DIR]
 */
#include <morsel.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct names {
    char **v;
    size_t n;
};

/* os.listdir(path): every name but "." and "..". */
static int listdir(const char *path, struct names *out)
{
    DIR *dir = opendir(path);
    if (!dir) return -errno;
    size_t cap = 0;
    int err = 0;
    for (struct dirent *e; !err && (errno = 0, e = readdir(dir)) != NULL;) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char **v = out->n < cap ? out->v : realloc(out->v, (cap = 2 * cap + 16) * sizeof(*v));
        if (v) out->v = v;
        if (!v || !(out->v[out->n] = strdup(e->d_name)))
            err = -ENOMEM;
        else
            out->n++;
    }
    if (!err && errno) err = -errno;
    closedir(dir);
    return err;
}

static void free_names(struct names *names)
{
    for (size_t i = 0; i < names->n; i++) free(names->v[i]);
    free(names->v);
}

/* The visit function: here it prints the directory and its size. */
static void visit(void *arg, const char *dirname, struct names *names)
{
    ++*(long *)arg;
    printf("%s: %zu names\n", dirname, names->n);
}

static int walk(mo_coro_t *co, const char *path, long *arg)
{
    struct names names = {0};
    int err = listdir(path, &names);
    if (!err) visit(arg, path, &names);
    for (size_t i = 0; !err && i < names.n; i++) {
        if ((err = mo_yield(co)) != 0) break; /* the seed's `yield None` */
        char *sub = malloc(strlen(path) + strlen(names.v[i]) + 2);
        struct stat st;
        if (!sub)
            err = -ENOMEM;
        else if (sprintf(sub, "%s/%s", path, names.v[i]) < 0 || lstat(sub, &st) != 0)
            err = -errno;
        else if (S_ISDIR(st.st_mode))
            err = walk(co, sub, arg);
        free(sub);
    }
    free_names(&names);
    if (err && err != MO_ECANCELED && !mo_coro_failure(co))
        return mo_coro_fail(co, mo_failure_new(err, "os_path_walk", "%s", path));
    return err;
}

struct start {
    const char *top;
    long dirs;
    int failed;
};

static int walk_main(mo_coro_t *co, void *arg)
{
    struct start *s = arg;
    return walk(co, s->top, &s->dirs);
}

static void done(mo_result_t *result, void *arg)
{
    printf("walk done: %ld directories\n", ((struct start *)arg)->dirs);
    (void)result;
}

static void failed(mo_result_t *result, void *arg)
{
    char line[512];
    mo_failure_format(mo_result_failure(result), line, sizeof(line));
    fprintf(stderr, "walk failed: %s\n", line);
    ((struct start *)arg)->failed = 1;
    mo_result_set(result, NULL, NULL); /* handled */
}

int main(int argc, char **argv)
{
    struct start s = {argc > 1 ? argv[1] : ".", 0, 0};
    struct mo_coro_opts opts = {.stack_size = 1 << 20}; /* deep trees recurse deep */
    mo_loop_t *loop;
    mo_task_t *task;
    if (mo_loop_new(&loop, 0) != 0) return 1;
    if (mo_coro_spawn(loop, walk_main, &s, &opts, &task) != 0) return 1;
    mo_deferred_t *d = mo_task_deferred(task);
    mo_deferred_add_callbacks(d, done, failed, &s);
    mo_deferred_unref(d);
    mo_task_release(task);
    int err = mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_loop_free(loop);
    return err || s.failed ? 1 : 0;
}
