/* What documents the CLI and is installed with it: the man page renders
 * without a warning; every command of `morsel --help` and every long
 * option of each `morsel CMD --help` is in the man page and in the bash,
 * zsh and fish completions (so a new command cannot be added without
 * them); the completions complete; `cmake --install` puts them all where
 * man and the shells look. */
#include "test.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAN_PAGE MO_SOURCE_DIR "/man/morsel.1"
#define BASH     MO_SOURCE_DIR "/completions/morsel.bash"
#define ZSH      MO_SOURCE_DIR "/completions/_morsel"
#define FISH     MO_SOURCE_DIR "/completions/morsel.fish"

/* The output of a command line (caller frees). */
static char *output_of(const char *fmt, const char *arg)
{
    char out[128], cmd[PATH_MAX + 1024];
    snprintf(out, sizeof out, "/tmp/morsel-docs-%ld", (long)getpid());
    snprintf(cmd, sizeof cmd, fmt, arg);
    assert_int_equal(mo_test_sh("%s > '%s' 2>&1", cmd, out), 0);
    char *s = mo_test_slurp(out, NULL);
    unlink(out);
    return s;
}

static void man_page_renders_without_warnings(void **state)
{
    (void)state;
    char *s = output_of("groff -man -Tutf8 -ww -z '%s'", MAN_PAGE);
    assert_string_equal(s, "");
    free(s);
    s = output_of("{ MANWIDTH=80 man --warnings -l '%s' >/dev/null; }", MAN_PAGE); /* stderr */
    assert_string_equal(s, "");
    free(s);
    /* It renders something: the commands' sections. */
    s = output_of("MANWIDTH=80 man -l '%s'", MAN_PAGE);
    assert_non_null(strstr(s, "morsel walk"));
    assert_non_null(strstr(s, "EXIT STATUS"));
    free(s);
}

/* The commands `morsel --help` lists: the first word of each line after
 * "commands:", up to the blank line; NULL-terminated, caller frees. */
static char **commands(void)
{
    char *help = output_of("'%s' --help", mo_test_program("morsel"));
    char **v = calloc(32, sizeof *v);
    assert_non_null(v);
    size_t n = 0;
    char *p = strstr(help, "commands:\n");
    assert_non_null(p);
    for (p += 10; *p == ' ' && n < 31; p = strchr(p, '\n') + 1) {
        p += strspn(p, " ");
        v[n++] = strndup(p, strcspn(p, " "));
    }
    free(help);
    assert_true(n >= 3);
    return v;
}

/* Whether `needle` is in `file`, between the first `from` and the next
 * `to` after it (the command's own part of the file); NULL: from the
 * start, to the end. */
static bool part_has(const char *file, const char *from, const char *to, const char *needle)
{
    char *s = mo_test_slurp(file, NULL);
    char *start = from ? strstr(s, from) : s;
    char *end = start && to ? strstr(start + 1, to) : NULL;
    if (end) *end = '\0';
    bool has = start && strstr(start, needle) != NULL;
    free(s);
    return has;
}

/* Each long option of `morsel CMD --help` ("--name"), in the command's
 * part of the man page (as roff spells it, "\-\-name"), of bash's and
 * zsh's ("--name") and of fish's ("-l name"); --help and --version, which
 * every command has, anywhere. */
static void check_options(const char *cmd)
{
    char args[PATH_MAX + 64], man[64], sh[64], fish_part[80];
    snprintf(args, sizeof args, "'%s' %s --help", mo_test_program("morsel"), cmd);
    snprintf(man, sizeof man, ".SS \"morsel %s\"", cmd);
    snprintf(sh, sizeof sh, "    %s)", cmd);
    snprintf(fish_part, sizeof fish_part, "__fish_seen_subcommand_from %s'", cmd);
    char *help = output_of("%s", args);
    size_t checked = 0;
    for (char *p = help; (p = strstr(p, "--")) != NULL; p += 2) {
        size_t len = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
        if (!len || p[1 + len] == '-') continue;
        char opt[64], roff[80], fish[80];
        snprintf(opt, sizeof opt, "--%.*s", (int)len, p + 2);
        snprintf(roff, sizeof roff, "\\-\\-");
        for (size_t i = 0; i < len && strlen(roff) + 3 < sizeof roff; i++) {
            size_t k = strlen(roff);
            if (p[2 + i] == '-') roff[k++] = '\\';
            roff[k++] = p[2 + i];
            roff[k] = '\0';
        }
        snprintf(fish, sizeof fish, "-l %.*s", (int)len, p + 2);
        bool std = !strcmp(opt, "--help") || !strcmp(opt, "--version");
        if (!part_has(MAN_PAGE, std ? NULL : man, std ? NULL : "\n.S", roff))
            fail_msg("man page: no %s for %s", opt, cmd);
        if (!part_has(BASH, sh, ";;", opt)) fail_msg("bash completion: no %s for %s", opt, cmd);
        if (!part_has(ZSH, std ? NULL : sh, std ? NULL : ";;", opt))
            fail_msg("zsh completion: no %s for %s", opt, cmd);
        if (!part_has(FISH, std ? NULL : fish_part, std ? NULL : "\n\n", fish))
            fail_msg("fish completion: no '%s' for %s", fish, cmd);
        checked++;
    }
    free(help);
    assert_true(checked >= 3);
}

/* Whether `needle` is in `file`. */
static bool file_has(const char *file, const char *needle)
{
    return part_has(file, NULL, NULL, needle);
}

static void every_command_and_option_is_documented(void **state)
{
    (void)state;
    char **cmds = commands();
    for (char **c = cmds; *c; c++) {
        char section[64], zsh[64], fish[64];
        snprintf(section, sizeof section, ".SS \"morsel %s\"", *c);
        snprintf(zsh, sizeof zsh, "    %s)", *c);
        snprintf(fish, sizeof fish, "-a %s -d", *c);
        if (!file_has(MAN_PAGE, section)) fail_msg("man page: no section %s", section);
        if (!file_has(BASH, zsh)) fail_msg("bash completion: no case for %s", *c);
        if (!file_has(ZSH, zsh)) fail_msg("zsh completion: no case for %s", *c);
        if (!file_has(FISH, fish)) fail_msg("fish completion: no command %s", *c);
        check_options(*c);
        free(*c);
    }
    free(cmds);
}

static void bash_completion_completes(void **state)
{
    (void)state;
    const char *script =
        "source '%s'\n"
        "c() { COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _morsel; "
        "echo \"${COMPREPLY[*]}\"; }\n"
        "c morsel wa; c morsel walk --ty; c morsel walk --type ''; "
        "c morsel lag --wat; c morsel factorial --steps ''; c morsel f\n";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, script, BASH);
    char path[128];
    snprintf(path, sizeof path, "/tmp/morsel-docs-%ld.bash", (long)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(cmd, f);
    fclose(f);
    char *s = output_of("bash '%s'", path);
    unlink(path);
    assert_string_equal(s, "walk\n--type\nf d l p s b c\n--watchdog\nauto\nfactorial\n");
    free(s);
}

static void fish_completion_completes(void **state)
{
    (void)state;
    char *s = output_of("fish -c \"source '%s'; complete -C'morsel wa'; complete -C'morsel walk "
                        "--ty'; complete -C'morsel lag --wat'\" | cut -f1",
                        FISH);
    assert_string_equal(s, "walk\n--type\n--watchdog\n");
    free(s);
}

static void zsh_completion_loads(void **state)
{
    (void)state;
    char *s = output_of("zsh -n '%s'", ZSH);
    assert_string_equal(s, "");
    free(s);
    s = output_of("zsh -f -c 'fpath=(%s/completions $fpath); autoload -U compinit; compinit -u -D; "
                  "autoload -Uz _morsel; whence -w _morsel'",
                  MO_SOURCE_DIR);
    assert_string_equal(s, "_morsel: function\n");
    free(s);
}

static void install_puts_them_where_they_are_looked_for(void **state)
{
    (void)state;
    char prefix[128];
    snprintf(prefix, sizeof prefix, "/tmp/morsel-docs-install-%ld", (long)getpid());
    assert_int_equal(
        mo_test_sh("cmake --install '%s' --prefix '%s' > /dev/null", MO_BINARY_DIR, prefix), 0);
    const char *files[] = {
        "bin/morsel", "share/man/man1/morsel.1", "share/bash-completion/completions/morsel",
        "share/zsh/site-functions/_morsel", "share/fish/vendor_completions.d/morsel.fish"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[300];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", prefix, files[i]);
        if (stat(p, &st) != 0) fail_msg("not installed: %s", files[i]);
    }
    /* man finds the page by name under the prefix. */
    assert_int_equal(mo_test_sh("MANPATH='%s/share/man' man -w morsel | grep -q morsel.1", prefix),
                     0);
    assert_int_equal(mo_test_sh("rm -rf '%s'", prefix), 0);
}

MO_TEST_MAIN(cmocka_unit_test(man_page_renders_without_warnings),
             cmocka_unit_test(every_command_and_option_is_documented),
             cmocka_unit_test(bash_completion_completes),
             cmocka_unit_test(fish_completion_completes), cmocka_unit_test(zsh_completion_loads),
             cmocka_unit_test(install_puts_them_where_they_are_looked_for))
