/* progress: the one line on the terminal that says how far a long command
 * has got. Every command that shows progress uses this module, so that all
 * keep the same rules:
 * - shown only when stderr is a terminal, and never with --no-progress;
 * - at most 10 redraws a second: one delayed call on the command's loop,
 *   every 100 ms (the loop stays responsive, so the line is on time);
 * - each redraw rewrites the whole line in one write, "\r" + text +
 *   "\033[K", so nothing of a longer earlier line is left; the text is cut
 *   to the terminal's width (no wrapping), which is read again on SIGWINCH,
 *   and SIGWINCH redraws at once (if the last redraw is 100 ms old, else at
 *   the next tick);
 * - erased when the command stops it, before an error message (cli_error),
 *   and on a fatal signal (cli.h), so the shell prompt starts on a clean
 *   line;
 * - no colour, so NO_COLOR has nothing to turn off (a future colour must
 *   check it here, once, for every command).
 * Loop thread only; one progress line per process at a time. */
#ifndef MORSEL_TOOLS_PROGRESS_H
#define MORSEL_TOOLS_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "morsel.h"

struct cli_progress;

/* Writes the line's text (no newline, no escape sequence) into buf, at
 * most `width` columns wide (the module cuts it there anyway). `elapsed`
 * is the time since the progress started, in ns. */
typedef void (*cli_progress_draw_fn)(void *arg, char *buf, size_t size, int width, int64_t elapsed);

/* Whether a command should show progress: stderr is a terminal and the
 * user did not say --no-progress. */
bool cli_progress_wanted(bool no_progress);

/* Starts drawing on `loop` every 100 ms, the first time 100 ms from now.
 * Returns NULL (no progress; every function below accepts NULL) when
 * `wanted` is false or the loop cannot take the timer. The caller must stop
 * it before the loop can end (its timer keeps the loop alive). */
struct cli_progress *cli_progress_start(mo_loop_t *loop, bool wanted, cli_progress_draw_fn draw,
                                        void *arg);

/* Erases the line, stops the timer and the SIGWINCH watch, frees. */
void cli_progress_stop(struct cli_progress *p);

/* Redraws now if the last redraw is at least 100 ms old. */
void cli_progress_poke(struct cli_progress *p);

/* Helpers for draw functions. cli_progress_bar() writes "[#####.....] 42%"
 * sized for `cols` columns in all; cli_progress_time() "12.3s", "4m05s" or
 * "1h02m". Both return buf. */
char *cli_progress_bar(char *buf, size_t size, double fraction, int cols);
char *cli_progress_time(char *buf, size_t size, int64_t ns);

#endif
