/* What the subcommands share: see cli.h. The only global state of the
 * command line is here: what the signal handler must reach (the progress
 * line, a temporary file) and how the process started (SIGPIPE). */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool sigpipe_ignored;             /* at start: EPIPE is then reported, not died of */
static bool stdout_reported;             /* a write error on stdout was reported already */
static volatile sig_atomic_t line_shown; /* a progress line is on stderr */
static volatile sig_atomic_t have_tmp;   /* tmp_path is to be removed */
static char tmp_path[PATH_MAX];

static const int fatal_signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGXFSZ};

/* ---- signals ---- */

/* Async-signal-safe: what a dying command must not leave behind. */
static void cleanup_now(void)
{
    static const char erase[] = "\r\033[K";
    if (line_shown) {
        ssize_t w = write(STDERR_FILENO, erase, sizeof erase - 1);
        (void)w;
        line_shown = 0;
    }
    if (have_tmp) {
        unlink(tmp_path);
        have_tmp = 0;
    }
}

/* Cleans up, then dies of the signal as if it had no handler (the shell
 * sees 128 + sig; SA_RESETHAND restored the default on entry). */
static void on_fatal_signal(int sig)
{
    int saved = errno;
    cleanup_now();
    raise(sig);
    errno = saved;
}

static void install_handlers(void)
{
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
        struct sigaction old,
            sa = {.sa_handler = on_fatal_signal, .sa_flags = SA_RESETHAND | SA_NODEFER};
        sigemptyset(&sa.sa_mask);
        if (sigaction(fatal_signals[i], NULL, &old) != 0) continue;
        if (old.sa_handler == SIG_IGN) { /* the caller's choice: keep it */
            if (fatal_signals[i] == SIGPIPE) sigpipe_ignored = true;
            continue;
        }
        sigaction(fatal_signals[i], &sa, NULL);
    }
}

void cli_cleanup_line(bool shown)
{
    line_shown = shown;
}

bool cli_cleanup_file(const char *path)
{
    have_tmp = 0;
    if (!path) return true;
    size_t n = strlen(path);
    if (n >= sizeof tmp_path) return false;
    memcpy(tmp_path, path, n + 1);
    have_tmp = 1;
    return true;
}

/* Dies of SIGPIPE, as find and coreutils do when their reader has gone. */
static void die_of_sigpipe(void)
{
    cleanup_now();
    signal(SIGPIPE, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(SIGPIPE);
}

/* ---- the process ---- */

void cli_init(void)
{
    /* Read-only stdout and stderr, write-only stdin: a command writing to
     * a descriptor that was closed gets EBADF, as it would without us. */
    static const int modes[] = {O_WRONLY, O_RDONLY, O_RDONLY};
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
        int got = open("/dev/null", modes[fd]);
        if (got >= 0 && got != fd) close(got); /* cannot happen: lowest free */
        if (got < 0) _exit(CLI_FAIL);
    }
    install_handlers();
    setlocale(LC_CTYPE, "");
}

int cli_finish(const char *command, int status)
{
    bool failed = ferror(stdout) != 0;
    int err = 0;
    if (fflush(stdout) != 0) {
        failed = true;
        err = errno;
    }
    if (fclose(stdout) != 0 && !err) {
        failed = true;
        err = errno;
    }
    if (!failed) return status;
    if (!stdout_reported) {
        if (err == EPIPE && !sigpipe_ignored) die_of_sigpipe();
        if (err)
            cli_error(command, "cannot write to standard output: %s", strerror(err));
        else
            cli_error(command, "cannot write to standard output");
    }
    return status ? status : CLI_FAIL;
}

int cli_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

void cli_write_failed(const char *command, const char *file, int err)
{
    if (err == EPIPE && !sigpipe_ignored) die_of_sigpipe();
    if (!file) {
        if (stdout_reported) return;
        stdout_reported = true;
        cli_error(command, "cannot write to standard output: %s", strerror(err));
    } else {
        cli_error(command, "cannot write '%s': %s", file, strerror(err));
    }
}

/* ---- messages ---- */

static void verror(const char *command, const char *fmt, va_list ap)
{
    char msg[4096];
    int n = snprintf(msg, sizeof msg, "%smorsel: %s%s", line_shown ? "\r\033[K" : "",
                     command ? command : "", command ? ": " : "");
    line_shown = 0; /* the progress line redraws itself at its next tick */
    if (n < 0 || (size_t)n >= sizeof msg) return;
    int m = vsnprintf(msg + n, sizeof msg - (size_t)n - 1, fmt, ap);
    if (m < 0) return;
    size_t len = (size_t)n +
                 ((size_t)m < sizeof msg - (size_t)n - 1 ? (size_t)m : sizeof msg - (size_t)n - 2);
    msg[len++] = '\n';
    (void)cli_write_all(STDERR_FILENO, msg, len); /* one write: lines do not mix */
}

void cli_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(command, fmt, ap);
    va_end(ap);
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(command, fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'morsel%s%s --help' for more information.\n", command ? " " : "",
            command ? command : "");
    return CLI_USAGE;
}

/* ---- options ---- */

int cli_getopt(const char *command, void (*usage)(FILE *out), int argc, char **argv,
               const char *shortopts, const struct option *longopts, int *status)
{
    char opts[128];
    snprintf(opts, sizeof opts, ":%s", shortopts); /* ':': missing arguments told apart */
    opterr = 0;                                    /* our own messages */
    int prev = optind;
    int c = getopt_long(argc, argv, opts, longopts, NULL);
    switch (c) {
    case 'h':
        usage(stdout);
        *status = CLI_OK;
        return CLI_OPT_EXIT;
    case 'V':
        printf("morsel %s\n", mo_version_string());
        *status = CLI_OK;
        return CLI_OPT_EXIT;
    case ':':
    case '?': {
        /* A long option is the argument getopt just consumed; a short one
         * is optopt (it may sit in a bundle like "-0Z"). */
        const char *arg = optind > prev && optind <= argc ? argv[optind - 1] : "";
        char name[64];
        if (!strncmp(arg, "--", 2))
            snprintf(name, sizeof name, "%.*s", (int)strcspn(arg, "="), arg);
        else
            snprintf(name, sizeof name, "-%c", optopt);
        const char *what = c == ':'                   ? "option '%s' needs an argument"
                           : optopt && name[1] == '-' ? "option '%s' takes no argument"
                                                      : "unknown option '%s'";
        *status = cli_usage_error(command, what, name);
        return CLI_OPT_EXIT;
    }
    default:
        return c;
    }
}

bool cli_parse_u64(const char *text, uint64_t max, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v > max) return false;
    *out = v;
    return true;
}

bool cli_parse_time(const char *text, int64_t unit, double max, int64_t *ns)
{
    if (!text || ((*text < '0' || *text > '9') && *text != '.')) return false;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= 0) || v > max) return false;
    *ns = (int64_t)(v * (double)unit);
    return true;
}

/* ---- formatting ---- */

const char *cli_duration(int64_t ns, char *buf, unsigned size)
{
    if (ns < MO_USEC(1))
        snprintf(buf, size, "%lldns", (long long)ns);
    else if (ns < MO_MSEC(1))
        snprintf(buf, size, "%.1fus", ns / 1e3);
    else if (ns < MO_SEC(1))
        snprintf(buf, size, "%.2fms", ns / 1e6);
    else
        snprintf(buf, size, "%.2fs", ns / 1e9);
    return buf;
}

void cli_json_us(FILE *out, bool *first, const char *name, int64_t ns)
{
    fprintf(out, "%s\"%s\":%.3f", *first ? "" : ",", name, ns / 1e3);
    *first = false;
}

void cli_json_u64(FILE *out, bool *first, const char *name, uint64_t v)
{
    fprintf(out, "%s\"%s\":%llu", *first ? "" : ",", name, (unsigned long long)v);
    *first = false;
}

void cli_json_summary(FILE *out, const char *name, const struct mo_stats_summary *s)
{
    bool first = true;
    fprintf(out, ",\"%s\":{", name);
    cli_json_u64(out, &first, "count", s->count);
    cli_json_us(out, &first, "p50_us", s->p50);
    cli_json_us(out, &first, "p99_us", s->p99);
    cli_json_us(out, &first, "p999_us", s->p999);
    cli_json_us(out, &first, "max_us", s->max);
    fputc('}', out);
}
