/* walk_filter: find's tests, per name. See walk_filter.h. */
#include "walk_filter.h"

#include <fnmatch.h>
#include <langinfo.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "morsel.h"

/* The shapes of a glob: a literal name, "*" + literal (a suffix), literal
 * + "*" (a prefix), or anything else (fnmatch). */
enum { SHAPE_FNMATCH, SHAPE_LITERAL, SHAPE_SUFFIX, SHAPE_PREFIX };

void walk_filter_init(struct walk_filter *f)
{
    *f = (struct walk_filter){.max_depth = UINT_MAX};
}

void walk_filter_free(struct walk_filter *f)
{
    free(f->names);
    free(f->excludes);
}

bool walk_filter_add_type(struct walk_filter *f, const char *letter)
{
    static const char letters[] = "fdlpsbc";
    static const unsigned types[] = {MO_WALK_REG,  MO_WALK_DIR, MO_WALK_LNK, MO_WALK_FIFO,
                                     MO_WALK_SOCK, MO_WALK_BLK, MO_WALK_CHR};
    const char *p = letter[0] && !letter[1] ? strchr(letters, letter[0]) : NULL;
    if (!p) return false;
    f->types |= UINT32_C(1) << types[p - letters];
    return true;
}

/* Byte comparison gives fnmatch's answer in single-byte locales and in
 * UTF-8 (an ASCII byte never occurs inside a multibyte character; glibc
 * matches invalid sequences byte by byte); elsewhere, always fnmatch. */
static bool bytes_are_chars(void)
{
    if (MB_CUR_MAX == 1) return true;
    const char *set = nl_langinfo(CODESET);
    return set && (!strcmp(set, "UTF-8") || !strcmp(set, "utf8"));
}

static void glob_shape(struct walk_glob *g, const char *pat, bool casefold)
{
    size_t n = strlen(pat);
    *g = (struct walk_glob){.pat = pat, .len = n, .flags = casefold ? FNM_CASEFOLD : 0};
    if (casefold || !bytes_are_chars()) return;
    const char *meta = strpbrk(pat, "*?[\\");
    if (!meta) {
        g->shape = SHAPE_LITERAL;
    } else if (meta == pat && n > 1 && !strpbrk(pat + 1, "*?[\\")) {
        g->shape = SHAPE_SUFFIX;
        g->pat = pat + 1;
        g->len = n - 1;
    } else if (meta == pat + n - 1 && *meta == '*') {
        g->shape = SHAPE_PREFIX;
        g->len = n - 1;
    }
}

static bool glob_add(struct walk_glob **v, size_t *n, const char *pat, bool casefold)
{
    struct walk_glob *g = realloc(*v, (*n + 1) * sizeof **v);
    if (!g) return false;
    *v = g;
    glob_shape(&g[(*n)++], pat, casefold);
    return true;
}

bool walk_filter_add_name(struct walk_filter *f, const char *pat, bool casefold)
{
    return glob_add(&f->names, &f->nnames, pat, casefold);
}

bool walk_filter_add_exclude(struct walk_filter *f, const char *pat)
{
    return glob_add(&f->excludes, &f->nexcludes, pat, false);
}

bool walk_filter_active(const struct walk_filter *f)
{
    return f->min_depth || f->max_depth != UINT_MAX || f->types || f->nnames || f->nexcludes;
}

static bool glob_match(const struct walk_glob *g, const char *name, size_t len)
{
    switch (g->shape) {
    case SHAPE_LITERAL:
        return len == g->len && !memcmp(name, g->pat, len);
    case SHAPE_SUFFIX:
        return len >= g->len && !memcmp(name + len - g->len, g->pat, g->len);
    case SHAPE_PREFIX:
        return len >= g->len && !memcmp(name, g->pat, g->len);
    default:
        return fnmatch(g->pat, name, g->flags) == 0;
    }
}

static bool any_match(const struct walk_glob *v, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (glob_match(&v[i], name, len)) return true;
    return false;
}

bool walk_filter_match(const struct walk_filter *f, const char *name, size_t len, unsigned type)
{
    if (f->types && (type > 31 || !(f->types & (UINT32_C(1) << type)))) return false;
    return !f->nnames || any_match(f->names, f->nnames, name, len);
}

bool walk_filter_excluded(const struct walk_filter *f, const char *name, size_t len)
{
    return f->nexcludes && any_match(f->excludes, f->nexcludes, name, len);
}

char *walk_filter_base(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && path[start - 1] != '/') start--;
    if (start == n) start = n - (n > 0); /* "/" */
    return strndup(path + start, n - start);
}
