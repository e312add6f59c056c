#!/usr/bin/env bash
# Shows that scripts/check-layers fails on a deliberately added upward call
# or include, and passes the same tree without it. Run by CTest.
set -uo pipefail
check=$(cd "$(dirname "$0")/.." && pwd)/scripts/check-layers
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$tmp/src/core" "$tmp/src/work" "$tmp/obj/core" "$tmp/obj/work"
cat >"$tmp/src/work/up.c" <<'C'
void mo__up(void);
void mo__up(void) {}
C
cat >"$tmp/src/work/work_int.h" <<'C'
#include "deferred/deferred_int.h"
C
build() { # the core file's body
    printf '%s\n' "$1" >"$tmp/src/core/down.c"
    "$cc" -c "$tmp/src/core/down.c" -o "$tmp/obj/core/down.c.o" &&
    "$cc" -c "$tmp/src/work/up.c" -o "$tmp/obj/work/up.c.o" || fail "cannot compile"
}

# 1. Clean: core calls nothing above it.
build 'void mo__down(void); void mo__down(void) {}'
out=$("$check" "$tmp/src" "$tmp/obj") || fail "a clean tree was refused: $out"

# 2. An upward call: core calls a function the work layer defines.
build 'void mo__up(void); void mo__down(void); void mo__down(void) { mo__up(); }'
out=$("$check" "$tmp/src" "$tmp/obj") && fail "an upward call passed: $out"
grep -q 'down.c.o (core) uses mo__up, defined in layer work' <<<"$out" || fail "unexpected report: $out"

# 3. An upward include: core includes the work layer's header.
build 'void mo__down(void); void mo__down(void) {}'
printf '#include "work/work_int.h"\n' >"$tmp/src/core/core_int.h"
out=$("$check" "$tmp/src" "$tmp/obj") && fail "an upward include passed: $out"
grep -q 'core_int.h (core) includes "work/work_int.h" of layer work' <<<"$out" || fail "unexpected report: $out"
rm "$tmp/src/core/core_int.h"

# 4. An internal header reaching past the layer directly below.
printf '#include "core/core_int.h"\n' >"$tmp/src/work/work_int.h"
out=$("$check" "$tmp/src" "$tmp/obj") && fail "a header skipping a layer passed: $out"
grep -q 'work_int.h includes "core/core_int.h"' <<<"$out" || fail "unexpected report: $out"
echo "check-layers: refuses upward calls and includes, accepts the clean tree"
