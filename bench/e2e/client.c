/* e2e_client: the load client of bench/e2e (tools/loadgen.c) as a program.
 *
 *   e2e_client --port P [--host H] [--conns 16] [--period-ms 10] [--idle-ms 3000]
 *              [--factorial N] [--walk DIR [--walk-expect COUNT:HASH]] [--jobs 1]
 *              [--timeout-s 120] [--samples FILE] [--json]
 *   e2e_client --check --port P --tree DIR [--host H]
 *   e2e_client --make-tree [--parent DIR] [--entries N] [--files-per-dir F] [--special]
 *   e2e_client --remove-tree DIR
 *
 * Run mode: phase idle (pings only, --idle-ms), then phase work (the same
 * pings, plus --jobs connections asking `factorial N` and --jobs asking
 * `walk DIR`, all at once; the phase ends with the last answer), then one
 * `stats`. Prints the round trips of each phase (p50/p99/max), the time to
 * each answer's last byte, and whether every answer was right; --json as
 * one line for bench/e2e/run. --samples writes every round trip
 * (phase,due_us,rtt_us) for a chart. Exit status: 0 all answers right, 1 a
 * wrong answer or a failure, 2 usage, 130 interrupted.
 *
 * --check: every rule of docs/protocol.md against the server, on small
 * cases (factorial 20, the tree DIR made with --make-tree --special), then a
 * short load run; prints one line per check, exit 0 when all pass.
 *
 * --make-tree prints the tree's path, then "COUNT:HASH" (what --walk-expect
 * takes); it removes what it made when interrupted. */
#include "check.h"
#include "loadgen.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int interrupted;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&interrupted, 1);
}

static void catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

struct args {
    const char *host;
    unsigned port, conns, jobs;
    int64_t period, idle, timeout;
    unsigned long factorial;
    const char *walk, *expect, *samples, *tree, *parent;
    bool json, check, make_tree, special;
    const char *remove_tree;
    uint64_t entries;
    unsigned files_per_dir;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: e2e_client --port P [--host H] [--conns N] [--period-ms MS] [--idle-ms MS]\n"
            "                  [--factorial N] [--walk DIR [--walk-expect COUNT:HASH]] [--jobs N]\n"
            "                  [--timeout-s S] [--samples FILE] [--json]\n"
            "       e2e_client --check --port P --tree DIR [--host H]\n"
            "       e2e_client --make-tree [--parent DIR] [--entries N] [--files-per-dir F] "
            "[--special]\n"
            "       e2e_client --remove-tree DIR\n");
}

static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option longopts[] = {{"host", 1, 0, 'H'},      {"port", 1, 0, 'p'},
                                             {"conns", 1, 0, 'c'},     {"period-ms", 1, 0, 'P'},
                                             {"idle-ms", 1, 0, 'i'},   {"factorial", 1, 0, 'f'},
                                             {"walk", 1, 0, 'w'},      {"walk-expect", 1, 0, 'e'},
                                             {"jobs", 1, 0, 'j'},      {"timeout-s", 1, 0, 't'},
                                             {"samples", 1, 0, 's'},   {"json", 0, 0, 'J'},
                                             {"check", 0, 0, 'C'},     {"tree", 1, 0, 'T'},
                                             {"make-tree", 0, 0, 'M'}, {"parent", 1, 0, 'R'},
                                             {"entries", 1, 0, 'n'},   {"files-per-dir", 1, 0, 'F'},
                                             {"special", 0, 0, 'S'},   {"remove-tree", 1, 0, 'D'},
                                             {"help", 0, 0, 'h'},      {0, 0, 0, 0}};
    *a = (struct args){
        .conns = 16, .jobs = 1, .period = MO_MSEC(10), .idle = MO_SEC(3), .timeout = MO_SEC(120)};
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'H':
            a->host = optarg;
            break;
        case 'p':
            a->port = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'c':
            a->conns = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'P':
            a->period = MO_USEC((int64_t)(strtod(optarg, NULL) * 1000));
            break;
        case 'i':
            a->idle = MO_MSEC(strtoll(optarg, NULL, 10));
            break;
        case 'f':
            a->factorial = strtoul(optarg, NULL, 10);
            break;
        case 'w':
            a->walk = optarg;
            break;
        case 'e':
            a->expect = optarg;
            break;
        case 'j':
            a->jobs = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't':
            a->timeout = MO_SEC(strtoll(optarg, NULL, 10));
            break;
        case 's':
            a->samples = optarg;
            break;
        case 'J':
            a->json = true;
            break;
        case 'C':
            a->check = true;
            break;
        case 'T':
            a->tree = optarg;
            break;
        case 'M':
            a->make_tree = true;
            break;
        case 'R':
            a->parent = optarg;
            break;
        case 'n':
            a->entries = strtoull(optarg, NULL, 10);
            break;
        case 'F':
            a->files_per_dir = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'S':
            a->special = true;
            break;
        case 'D':
            a->remove_tree = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (optind != argc || a->jobs > 16 || a->conns == 0 || a->period <= 0) return -1;
    if (!a->make_tree && !a->remove_tree && !a->port) return -1;
    if (a->check && !a->tree) return -1;
    return 0;
}

/* ---- trees ---- */

static int make_tree(const struct args *a)
{
    struct loadgen_tree_opts o = {a->entries, a->files_per_dir, a->special, &interrupted};
    char path[4096];
    struct loadgen_walk_sum sum;
    int err = loadgen_tree_make(a->parent, &o, path, sizeof path);
    if (!err) {
        err = loadgen_walk_sum_dir(path, &sum);
        if (err) loadgen_tree_remove(path);
    }
    if (err) {
        fprintf(stderr, "e2e_client: cannot make the tree: %s\n",
                err == MO_ECANCELED ? "interrupted" : strerror(-err));
        return err == MO_ECANCELED ? 130 : 1;
    }
    printf("%s\n%llu:%016llx\n", path, (unsigned long long)sum.count, (unsigned long long)sum.hash);
    return 0;
}

/* ---- run mode ---- */

static double us(int64_t ns)
{
    return (double)ns / 1e3;
}

static const struct loadgen_job *job_of(const struct loadgen_result *r, int kind)
{
    for (unsigned i = 0; i < r->njobs; i++)
        if (r->jobs[i].kind == kind) return &r->jobs[i];
    return NULL;
}

/* The slowest of the jobs of one kind: time from its request to its last
 * byte, in ms; -1 when one failed. */
static double job_ms(const struct loadgen_result *r, int kind, bool *ok)
{
    double worst = 0;
    for (unsigned i = 0; i < r->njobs; i++) {
        const struct loadgen_job *j = &r->jobs[i];
        if (j->kind != kind) continue;
        if (!j->ok) *ok = false;
        double ms = (double)(j->last_byte - j->sent) / 1e6;
        if (ms > worst) worst = ms;
    }
    return worst;
}

static void print_summary_json(const char *name, const struct loadgen_summary *s)
{
    printf("\"%s\":{\"n\":%zu,\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}", name, s->count,
           us(s->p50), us(s->p99), us(s->max));
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned char)*s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void print_json(const struct args *a, const struct loadgen_result *idle,
                       const struct loadgen_result *work, int status, const char *error)
{
    bool fok = true, wok = true;
    double fms = job_ms(work, LOADGEN_FACTORIAL, &fok), wms = job_ms(work, LOADGEN_WALK, &wok);
    const struct loadgen_job *stats = job_of(work, LOADGEN_STATS);
    const struct loadgen_job *wj = job_of(work, LOADGEN_WALK);
    putchar('{');
    print_summary_json("idle", &idle->ping);
    putchar(',');
    print_summary_json("work", &work->ping_work);
    putchar(',');
    print_summary_json("work_phase", &work->ping);
    printf(",\"factorial\":{\"n\":%lu,\"ok\":%s,\"ms\":%.1f}", a->factorial, fok ? "true" : "false",
           a->factorial ? fms : 0);
    printf(",\"walk\":{\"ok\":%s,\"ms\":%.1f,\"paths\":%llu}", wok ? "true" : "false",
           a->walk ? wms : 0, wj ? (unsigned long long)wj->paths : 0ULL);
    printf(",\"work_ms\":%.1f,\"client_late_max_us\":%.1f,\"server_stats\":",
           (double)(work->work_end - work->work_start) / 1e6,
           us(idle->client_late_max > work->client_late_max ? idle->client_late_max
                                                            : work->client_late_max));
    json_string(stats && stats->ok ? stats->answer : "");
    printf(",\"status\":%d,\"error\":", status);
    json_string(error);
    printf("}\n");
}

static void print_text(const struct args *a, const struct loadgen_result *idle,
                       const struct loadgen_result *work, const char *error)
{
    const struct loadgen_summary *s[] = {&idle->ping, &work->ping_work};
    const char *names[] = {"idle", "during work"};
    printf("%-12s %8s %10s %10s %10s\n", "ping rtt", "count", "p50 us", "p99 us", "max us");
    for (int i = 0; i < 2; i++)
        printf("%-12s %8zu %10.1f %10.1f %10.1f\n", names[i], s[i]->count, us(s[i]->p50),
               us(s[i]->p99), us(s[i]->max));
    for (unsigned i = 0; i < work->njobs; i++) {
        const struct loadgen_job *j = &work->jobs[i];
        if (j->kind == LOADGEN_STATS) {
            printf("server stats: %s\n", j->ok ? j->answer : j->error);
            continue;
        }
        printf("%-9s %s: %.1f ms to the last byte, %llu bytes%s%s\n",
               j->kind == LOADGEN_FACTORIAL ? "factorial" : "walk",
               j->kind == LOADGEN_FACTORIAL ? "" : a->walk, (double)(j->last_byte - j->sent) / 1e6,
               (unsigned long long)j->bytes,
               j->ok ? ", correct" : ": WRONG: ", j->ok ? "" : j->error);
    }
    if (*error) printf("error: %s\n", error);
}

static int write_samples(const char *path, const struct loadgen_result *r, int n)
{
    FILE *f = fopen(path, "w");
    if (!f) return -errno;
    fprintf(f, "phase,due_us,rtt_us\n");
    for (int p = 0; p < n; p++)
        for (size_t i = 0; i < r[p].nsamples; i++)
            fprintf(f, "%s,%.1f,%.1f\n", p ? "work" : "idle", us(r[p].samples[i].sched),
                    us(r[p].samples[i].rtt));
    return fclose(f) == 0 ? 0 : -errno;
}

static int parse_expect(const char *text, struct loadgen_walk_sum *sum)
{
    char *end;
    sum->count = strtoull(text, &end, 10);
    if (*end != ':') return -1;
    sum->hash = strtoull(end + 1, &end, 16);
    return *end ? -1 : 0;
}

static int prepare_work(const struct args *a, struct loadgen_phase *work, char **digits)
{
    int err = 0;
    if (a->factorial) {
        work->factorial_jobs = a->jobs;
        work->factorial_n = a->factorial;
        err = loadgen_factorial_digits(a->factorial, digits, &work->factorial_len);
        work->factorial_digits = *digits;
    }
    if (!err && a->walk) {
        work->walk_jobs = a->jobs;
        work->walk_dir = a->walk;
        if (a->expect)
            err = parse_expect(a->expect, &work->walk_expect) ? MO_EINVAL : 0;
        else
            err = loadgen_walk_sum_dir(a->walk, &work->walk_expect);
    }
    return err;
}

static int run(const struct args *a)
{
    struct loadgen_phase phases[2] = {{.duration = a->idle, .timeout = a->idle + a->timeout},
                                      {.timeout = a->timeout, .ask_stats = true}};
    struct loadgen_result results[2];
    memset(results, 0, sizeof results);
    char *digits = NULL;
    int err = prepare_work(a, &phases[1], &digits);
    if (err) {
        fprintf(stderr, "e2e_client: cannot prepare the expected answers: %s\n", strerror(-err));
        free(digits);
        return 1;
    }
    struct loadgen_opts o = {a->host, a->port, a->conns, a->period, 0, &interrupted};
    struct loadgen_thread *t;
    err = loadgen_spawn(&t, &o, phases, 2, results);
    if (!err) err = loadgen_join(t);
    const char *error = results[0].status ? results[0].error : results[1].error;
    if (a->json)
        print_json(a, &results[0], &results[1], err, error);
    else
        print_text(a, &results[0], &results[1], error);
    if (a->samples && write_samples(a->samples, results, 2) != 0)
        fprintf(stderr, "e2e_client: cannot write %s\n", a->samples);
    loadgen_result_free(&results[0]);
    loadgen_result_free(&results[1]);
    free(digits);
    return err == MO_ECANCELED ? 130 : err ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a) != 0) {
        usage(stderr);
        return 2;
    }
    catch_signals();
    if (a.remove_tree) return loadgen_tree_remove(a.remove_tree) ? 1 : 0;
    if (a.make_tree) return make_tree(&a);
    if (a.check) return e2e_check(a.host, a.port, a.tree, &interrupted);
    return run(&a);
}
