/* walk_filter: what `morsel walk` prints and enters, decided per name as
 * the walk goes (in its visit callback, by pruning the names list), the
 * way find's expression does:
 *   --min-depth N / --max-depth N   find -mindepth / -maxdepth
 *   --type f|d|l|p|s|b|c            find -type, repeatable, OR'ed
 *   --name GLOB / --iname GLOB      find -name / -iname (fnmatch on the
 *                                   name, FNM_CASEFOLD for -iname),
 *                                   repeatable, OR'ed together
 *   --exclude GLOB                  find ! -path TOP -name GLOB -prune:
 *                                   a matching name is not printed and,
 *                                   if a directory, not entered; never
 *                                   applied to a DIR given on the line
 * A name is printed when it is at least --min-depth deep and passes
 * --type and --name/--iname; a directory is entered when it is less than
 * --max-depth deep and not excluded, whether printed or not. Globs are
 * matched as fnmatch(3) matches them in the locale's LC_CTYPE (as find
 * does); the common shapes ("*.h", "name", "prefix*") are matched without
 * fnmatch where that gives the same answer. */
#ifndef MORSEL_TOOLS_WALK_FILTER_H
#define MORSEL_TOOLS_WALK_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct walk_glob {
    const char *pat; /* the argument, borrowed */
    size_t len;      /* of the literal part, for the fast shapes */
    uint8_t shape;   /* enum in walk_filter.c */
    int flags;       /* fnmatch flags */
};

struct walk_filter {
    unsigned min_depth, max_depth; /* max_depth UINT_MAX: none */
    uint32_t types;                /* 1 << type (mo_walk_type) for each --type; 0: any */
    struct walk_glob *names;       /* --name, --iname: OR'ed; none: any */
    size_t nnames;
    struct walk_glob *excludes;
    size_t nexcludes;
};

/* A filter that lets everything through. */
void walk_filter_init(struct walk_filter *f);
void walk_filter_free(struct walk_filter *f);

/* Adds a --type letter; false if it is not one of f d l p s b c. */
bool walk_filter_add_type(struct walk_filter *f, const char *letter);

/* Adds a --name (casefold false), --iname (true) or --exclude glob; false
 * when out of memory. `pat` is borrowed: it must outlive the filter. */
bool walk_filter_add_name(struct walk_filter *f, const char *pat, bool casefold);
bool walk_filter_add_exclude(struct walk_filter *f, const char *pat);

/* Whether any test is set: without one, every name is printed and every
 * directory entered (the walk's fast path). */
bool walk_filter_active(const struct walk_filter *f);

/* Whether the name (len bytes, NUL-terminated) of type `type` passes
 * --type and --name/--iname (not the depths). */
bool walk_filter_match(const struct walk_filter *f, const char *name, size_t len, unsigned type);

/* Whether --exclude prunes the name. */
bool walk_filter_excluded(const struct walk_filter *f, const char *name, size_t len);

/* The name find's -name tests for a path given on the command line: its
 * last component, trailing slashes ignored ("a/" -> "a", "/" -> "/"), as
 * a string the caller frees; NULL when out of memory. */
char *walk_filter_base(const char *path);

#endif
