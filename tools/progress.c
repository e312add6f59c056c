/* progress: the terminal's progress line. See progress.h. */
#include "progress.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"

#define PERIOD    MO_MSEC(100) /* at most 10 redraws a second */
#define LINE_SIZE 512

struct cli_progress {
    mo_loop_t *loop;
    cli_progress_draw_fn draw;
    void *arg;
    int64_t started, drawn; /* when it started, when it last drew */
    mo_call_id timer;
    mo_io_id winch_io;
    int width; /* the terminal's columns */
    struct sigaction old_winch;
    bool winch_set;
};

/* SIGWINCH writes a byte here; the loop reads it and redraws. */
static int winch_pipe[2] = {-1, -1};

static void on_winch(int sig)
{
    (void)sig;
    int saved = errno;
    ssize_t w = write(winch_pipe[1], "w", 1); /* full pipe: a redraw is due anyway */
    (void)w;
    errno = saved;
}

static int terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1) return ws.ws_col;
    return 80;
}

bool cli_progress_wanted(bool no_progress)
{
    return !no_progress && isatty(STDERR_FILENO);
}

/* "\r" + the text cut to width - 1 columns + "clear to the end of line",
 * in one write. The text is the command's own (ASCII), so a byte is a
 * column. */
static void redraw(struct cli_progress *p)
{
    char line[LINE_SIZE + 8];
    int cols = p->width - 1 < LINE_SIZE ? p->width - 1 : LINE_SIZE;
    int64_t now = mo_hrtime();
    line[0] = '\r';
    line[1] = '\0';
    p->draw(p->arg, line + 1, (size_t)cols + 1, cols, now - p->started);
    size_t len = strnlen(line, (size_t)cols + 1);
    memcpy(line + len, "\033[K", 3);
    p->drawn = now;
    cli_cleanup_line(true);
    (void)cli_write_all(STDERR_FILENO, line, len + 3);
}

static void tick(mo_loop_t *loop, void *arg)
{
    struct cli_progress *p = arg;
    redraw(p);
    if (mo_call_later(loop, PERIOD, tick, p, &p->timer) != 0) p->timer = 0;
}

void cli_progress_poke(struct cli_progress *p)
{
    if (p && mo_hrtime() - p->drawn >= PERIOD) redraw(p);
}

static void winch_readable(mo_loop_t *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)events;
    char buf[64];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    struct cli_progress *p = arg;
    p->width = terminal_width();
    cli_progress_poke(p);
}

/* Best effort: without the pipe the width is still read at start. */
static void watch_winch(struct cli_progress *p)
{
    if (winch_pipe[0] < 0 && pipe2(winch_pipe, O_NONBLOCK | O_CLOEXEC) != 0) return;
    if (mo_io_start(p->loop, winch_pipe[0], MO_READABLE, winch_readable, p, &p->winch_io) != 0) {
        p->winch_io = 0;
        return;
    }
    struct sigaction sa = {.sa_handler = on_winch, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    p->winch_set = sigaction(SIGWINCH, &sa, &p->old_winch) == 0;
}

struct cli_progress *cli_progress_start(mo_loop_t *loop, bool wanted, cli_progress_draw_fn draw,
                                        void *arg)
{
    if (!wanted) return NULL;
    struct cli_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    *p = (struct cli_progress){.loop = loop, .draw = draw, .arg = arg, .width = terminal_width()};
    p->started = p->drawn = mo_hrtime();
    if (mo_call_later(loop, PERIOD, tick, p, &p->timer) != 0) {
        free(p);
        return NULL;
    }
    watch_winch(p);
    return p;
}

void cli_progress_stop(struct cli_progress *p)
{
    if (!p) return;
    if (p->timer) mo_call_cancel(p->loop, p->timer);
    if (p->winch_set) sigaction(SIGWINCH, &p->old_winch, NULL);
    if (p->winch_io) mo_io_stop(p->loop, p->winch_io);
    if (p->drawn != p->started) (void)cli_write_all(STDERR_FILENO, "\r\033[K", 4);
    cli_cleanup_line(false);
    free(p);
}

char *cli_progress_bar(char *buf, size_t size, double fraction, int cols)
{
    if (fraction < 0) fraction = 0;
    if (fraction > 1) fraction = 1;
    int inner = cols - 7; /* "[" + bar + "] " + "100%" */
    if (inner < 1 || (size_t)cols + 1 > size) {
        snprintf(buf, size, "%3d%%", (int)(fraction * 100));
        return buf;
    }
    int full = (int)(fraction * inner);
    buf[0] = '[';
    memset(buf + 1, '#', (size_t)full);
    memset(buf + 1 + full, '.', (size_t)(inner - full));
    snprintf(buf + 1 + inner, size - 1 - (size_t)inner, "] %3d%%", (int)(fraction * 100));
    return buf;
}

char *cli_progress_time(char *buf, size_t size, int64_t ns)
{
    long long s = ns / MO_SEC(1);
    if (s < 60)
        snprintf(buf, size, "%.1fs", ns / 1e9);
    else if (s < 3600)
        snprintf(buf, size, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, size, "%lldh%02lldm", s / 3600, s / 60 % 60);
    return buf;
}
