/* The asynchronous directory walk over a small tree made for it: plain,
 * pruned in visit(), in parallel on the pool, following symbolic links
 * (a link back to the top is a loop, reported and not entered), and paused
 * from visit() for 10 ms by a reader that cannot keep up. */
#include <morsel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static mo_deferred_t *walk_d;

static void resume(mo_loop_t *loop, void *arg)
{
    (void)loop, (void)arg;
    printf("  resumed after 10 ms\n");
    mo_walk_resume(walk_d);
}

static void visit(void *arg, const char *dirname, mo_walk_names *names)
{
    const char *mode = arg;
    (void)dirname;
    for (size_t i = 0; i < names->count; i++)
        if (!strcmp(mode, "pruned") && !strcmp(names->names[i].name, "a"))
            mo_walk_names_remove(names, i--); /* never entered */
    if (!strcmp(mode, "paused") && names->depth == 0 && mo_walk_pause(walk_d) == 0)
        mo_call_later(mo_deferred_loop(walk_d), MO_MSEC(10), resume, NULL, NULL);
}

static void on_error(void *arg, const char *path, int err)
{
    (void)arg;
    printf("  error on %s: %s\n", strrchr(path, '/') + 1, mo_err_name(err));
}

static void walk(mo_loop_t *loop, const char *top, const char *mode, unsigned flags)
{
    mo_walk_opts opts = {.flags = flags, .on_error = on_error};
    if (mo_walk(loop, top, visit, (void *)mode, &opts, &walk_d) != 0) exit(1);
    if (mo_loop_run(loop, MO_RUN_DEFAULT) != 0) exit(1);
    void *value;
    const mo_failure_t *f;
    mo_deferred_result(walk_d, &value, &f);
    mo_walk_totals *t = value;
    if (t)
        printf("%s: %llu directories, %llu names, %llu errors\n", mode, (unsigned long long)t->dirs,
               (unsigned long long)t->names, (unsigned long long)t->errors);
    mo_deferred_unref(walk_d);
}

int main(void)
{
    char top[] = "/tmp/morsel-walk-XXXXXX", p[4][64];
    if (!mkdtemp(top)) return 1;
    const char *sub[] = {"a", "a/b", "c", "c/file"};
    for (int i = 0; i < 4; i++) snprintf(p[i], sizeof p[i], "%s/%s", top, sub[i]);
    mkdir(p[0], 0700), mkdir(p[1], 0700), mkdir(p[2], 0700), fclose(fopen(p[3], "w"));
    char link[80];
    snprintf(link, sizeof link, "%s/up", top);
    if (symlink(top, link) != 0) return 1; /* top/up -> top */

    mo_loop_t *loop;
    if (mo_loop_new(&loop, 0) != 0) return 1;
    walk(loop, top, "plain", 0);
    walk(loop, top, "pruned", 0);
    walk(loop, top, "parallel", MO_WALK_PARALLEL);
    walk(loop, top, "follow", MO_WALK_FOLLOW);
    walk(loop, top, "paused", 0);
    mo_loop_free(loop);
    unlink(link), unlink(p[3]), rmdir(p[2]), rmdir(p[1]), rmdir(p[0]), rmdir(top);
    return 0;
}
