/* The CLI's progress line (tools/progress.c), on a pseudo-terminal as
 * stderr: at most 10 redraws a second, each one "\r" + text + "\033[K"
 * in one piece, cut to the terminal's width, redrawn at once on SIGWINCH
 * with the new width, erased when stopped; nothing at all when stderr is
 * not a terminal or --no-progress is given. And the commands themselves,
 * under script(1). */
#include "test.h"

#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "progress.h"

struct run {
    int draws;
    int64_t end;         /* stop the progress then */
    int64_t winch_at;    /* resize the terminal then (0: never) */
    int64_t winch_drawn; /* when the first draw after the resize ran */
    int64_t winched;     /* when the resize was made */
    struct cli_progress *p;
    const char *text;
};

static void draw(void *arg, char *buf, size_t size, int width, int64_t elapsed)
{
    struct run *r = arg;
    (void)elapsed;
    r->draws++;
    if (r->winched && !r->winch_drawn) r->winch_drawn = mo_hrtime();
    snprintf(buf, size, "%d %s", width, r->text);
}

static int master_fd = -1;

static void set_width(int cols)
{
    struct winsize ws = {.ws_row = 24, .ws_col = (unsigned short)cols};
    assert_int_equal(ioctl(master_fd, TIOCSWINSZ, &ws), 0);
}

static void tick(mo_loop_t *loop, void *arg)
{
    struct run *r = arg;
    int64_t now = mo_hrtime();
    if (r->winch_at && !r->winched && now >= r->winch_at) {
        set_width(30);
        r->winched = now;
        raise(SIGWINCH); /* what the terminal driver sends on a resize */
    }
    if (now >= r->end) {
        cli_progress_stop(r->p);
        r->p = NULL;
        return;
    }
    assert_ok(mo_call_later(loop, MO_MSEC(5), tick, r, NULL));
}

/* Runs a progress line for `ms` on a pty of 20 columns as stderr; returns
 * what the terminal received (caller frees). */
static char *run_on_pty(struct run *r, int ms)
{
    int slave;
    assert_int_equal(openpty(&master_fd, &slave, NULL, NULL, NULL), 0);
    set_width(20);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(slave, STDERR_FILENO), STDERR_FILENO);
    mo_loop_t *loop = mo_test_loop();
    r->end = mo_hrtime() + MO_MSEC(ms);
    r->p = cli_progress_start(loop, cli_progress_wanted(false), draw, r);
    bool started = r->p != NULL;
    if (started) assert_ok(mo_call_later(loop, MO_MSEC(5), tick, r, NULL));
    int err = mo_loop_run(loop, MO_RUN_DEFAULT);
    mo_loop_free(loop);
    dup2(saved, STDERR_FILENO); /* before any assertion prints */
    close(saved);
    close(slave);
    assert_ok(err);
    assert_true(started);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    fcntl(master_fd, F_SETFL, O_NONBLOCK);
    for (ssize_t n; (n = read(master_fd, out + len, cap - len - 1)) > 0;) len += (size_t)n;
    out[len] = '\0';
    close(master_fd);
    return out;
}

/* Splits the terminal's bytes into redraws and checks each one. Returns
 * how many there were. */
static int check_redraws(const char *out, int max_cols)
{
    int n = 0;
    const char *p = out;
    while (*p) {
        if (p[0] != '\r') fail_msg("redraw does not start with \\r at '%s'", p);
        const char *clear = strstr(p, "\033[K");
        if (!clear) {
            fail_msg("redraw does not clear the rest of the line: '%s'", p);
            return n;
        }
        int cols = (int)(clear - p - 1);
        if (cols > max_cols)
            fail_msg("redraw of %d columns on a %d-column terminal", cols, max_cols);
        if (memchr(p + 1, '\n', (size_t)cols)) fail_msg("a newline in the progress line");
        n += cols > 0; /* the last one, "\r\033[K", erases */
        p = clear + 3;
    }
    return n;
}

static void at_most_ten_redraws_a_second_cut_and_erased(void **state)
{
    (void)state;
    struct run r = {.text = "a text much longer than the twenty columns of this terminal"};
    char *out = run_on_pty(&r, 1000);
    int n = check_redraws(out, 19);
    assert_in_range(n, 5, 11); /* 1 s at 100 ms; generous below: a busy machine */
    assert_int_equal(n, r.draws);
    /* Erased at the end: the prompt starts on a clean line. */
    size_t len = strlen(out);
    assert_true(len >= 4);
    assert_string_equal(out + len - 4, "\r\033[K");
    free(out);
}

static void sigwinch_redraws_with_the_new_width(void **state)
{
    (void)state;
    struct run r = {.text = "a text much longer than the thirty columns of the wider terminal",
                    .winch_at = mo_hrtime() + MO_MSEC(350)};
    char *out = run_on_pty(&r, 800);
    check_redraws(out, 29);
    assert_non_null(strstr(out, "\r19 a text")); /* the width it is given: columns - 1 */
    assert_non_null(strstr(out, "\r29 a text"));
    assert_true(r.winched > 0);
    /* At once, or at the next tick if the last redraw is under 100 ms old. */
    assert_in_range(r.winch_drawn - r.winched, 0, MO_MSEC(100) + MO_MSEC(50));
    free(out);
}

static void nothing_when_not_a_terminal_or_not_wanted(void **state)
{
    (void)state;
    mo_loop_t *loop = mo_test_loop();
    struct run r = {.text = "x"};
    int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
    dup2(null, STDERR_FILENO);
    bool wanted = cli_progress_wanted(false);
    struct cli_progress *p = cli_progress_start(loop, wanted, draw, &r);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(null);
    assert_false(wanted);
    assert_null(p);
    assert_false(cli_progress_wanted(true)); /* --no-progress */
    assert_null(cli_progress_start(loop, false, draw, &r));
    cli_progress_stop(NULL);
    cli_progress_poke(NULL);
    assert_ok(mo_loop_run(loop, MO_RUN_DEFAULT)); /* nothing keeps it alive */
    mo_loop_free(loop);
}

static void bar_and_time_helpers(void **state)
{
    (void)state;
    char buf[64], t[16];
    assert_string_equal(cli_progress_bar(buf, sizeof buf, 0.5, 17), "[#####.....]  50%");
    assert_string_equal(cli_progress_bar(buf, sizeof buf, 1.5, 17), "[##########] 100%");
    assert_string_equal(cli_progress_bar(buf, sizeof buf, -1, 17), "[..........]   0%");
    assert_string_equal(cli_progress_bar(buf, sizeof buf, 0.42, 5), " 42%");
    assert_string_equal(cli_progress_time(t, sizeof t, MO_MSEC(3200)), "3.2s");
    assert_string_equal(cli_progress_time(t, sizeof t, MO_SEC(245)), "4m05s");
    assert_string_equal(cli_progress_time(t, sizeof t, MO_SEC(3720)), "1h02m");
}

/* ---- the commands, on a terminal made by script(1) ---- */

/* Runs `morsel ARGS` with a pseudo-terminal as its stdin, stdout and
 * stderr (script -q), stdout redirected inside; returns what the terminal
 * received (caller frees). */
static char *under_script(const char *args)
{
    char out[128];
    snprintf(out, sizeof out, "/tmp/morsel-progress-%ld", (long)getpid());
    assert_int_equal(mo_test_sh("script -qec \"'%s' %s\" /dev/null > '%s' 2>&1 </dev/null",
                                mo_test_program("morsel"), args, out),
                     0);
    char *s = mo_test_slurp(out, NULL);
    unlink(out);
    return s;
}

static void walk_and_factorial_show_progress_on_a_terminal(void **state)
{
    (void)state;
    /* walk: entries, their rate, directories pending, elapsed; erased. */
    char *s = under_script("walk --count /usr");
    assert_non_null(strstr(s, "\rmorsel: walk: "));
    assert_non_null(strstr(s, " entries  "));
    assert_non_null(strstr(s, "/s  "));
    assert_non_null(strstr(s, " dirs pending  "));
    const char *last = strstr(s, " paths, ");
    assert_non_null(last);
    assert_non_null(strstr(s, "\r\033[K")); /* erased before the totals */
    free(s);
    s = under_script("walk --count --no-progress /usr");
    assert_null(strstr(s, "\rmorsel")); /* the terminal adds \r before \n: not that */
    assert_null(strstr(s, "\033"));
    free(s);
    /* factorial: a bar with a percentage, the phase, elapsed, ETA. */
    s = under_script("factorial 1000000 -o /dev/null");
    assert_non_null(strstr(s, "\r["));
    assert_non_null(strstr(s, "%  computing  "));
    assert_true(strstr(s, "ETA ") || strstr(s, "writing"));
    size_t len = strlen(s);
    assert_true(len >= 4);
    assert_string_equal(s + len - 4, "\r\033[K");
    free(s);
    s = under_script("factorial --no-progress 1000000 -o /dev/null");
    assert_string_equal(s, "");
    free(s);
}

MO_TEST_MAIN(cmocka_unit_test(at_most_ten_redraws_a_second_cut_and_erased),
             cmocka_unit_test(sigwinch_redraws_with_the_new_width),
             cmocka_unit_test(nothing_when_not_a_terminal_or_not_wanted),
             cmocka_unit_test(bar_and_time_helpers),
             cmocka_unit_test(walk_and_factorial_show_progress_on_a_terminal))
