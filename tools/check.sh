#!/bin/sh
# tools/check.sh UNIT_TEST... - runs every suite of `make check` and ends
# with one line "N passed, N failed" (the totals of all of them):
#   0. luacheck over every Lua file (one test);
#   1. the C unit tests given as arguments;
#   2. the busted specs against build/ (the normal build);
#   3. the functional specs against build-asan/ (ASan + UBSan), where any
#      sanitizer report, from the manager or any worker, is a failure
#      (the soak and valgrind specs are left to step 2).
set -u
cd "$(dirname "$0")/.." || exit 2
passed=0
failed=0

add() { passed=$((passed + $1)); failed=$((failed + $2)); }

# Adds the counts of a "N passed, N failed" line; a run without one fails.
unit() {
    out=$("$1" 2>&1)
    status=$?
    printf '%s\n' "$out"
    counts=$(printf '%s\n' "$out" | sed -n 's/.* \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' | tail -n 1)
    if [ -z "$counts" ]; then add 0 1; return; fi
    add $counts
    [ "$status" -eq 0 ] || [ "${counts#* }" != 0 ] || add 0 1
}

# Runs busted with the given environment; adds successes and failures+errors.
specs() {
    label=$1
    shift
    echo "== specs: $label"
    out=$(env "$@" busted --lua=lua5.4 -o utfTerminal $BUSTED_ARGS $SPECS 2>&1)
    printf '%s\n' "$out"
    counts=$(printf '%s\n' "$out" | sed -n 's/^\([0-9]*\) successes* \/ \([0-9]*\) failures* \/ \([0-9]*\) errors*.*/\1 \2 \3/p' | tail -n 1)
    if [ -z "$counts" ]; then add 0 1; return; fi
    set -- $counts
    add "$1" $(($2 + $3))
}

echo "== luacheck (settings in .luacheckrc)"
if luacheck --no-color -q .; then add 1 0; else add 0 1; fi

echo "== C unit tests"
for t in "$@"; do unit "$t"; done

SPECS=$(ls spec/*_spec.lua)
BUSTED_ARGS=
specs "build" COTYLUA_BIN="$PWD/build/bin/cotylua"

# The soak, valgrind and install specs run against the normal build only.
SPECS=$(ls spec/*_spec.lua | grep -v support_spec)
BUSTED_ARGS=--exclude-tags=soak,valgrind,install
logs=$(mktemp -d)
specs "build-asan (AddressSanitizer, UndefinedBehaviorSanitizer)" \
    COTYLUA_BIN="$PWD/build-asan/bin/cotylua" \
    COTYLUA_LUA_CPATH="$PWD/build-asan/lib/?.so;;" \
    COTYLUA_SPEC_PRELOAD="$(${CC:-cc} -print-file-name=libasan.so)" \
    COTYLUA_SPEC_SLOW=3 \
    ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1" \
    UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1"
if [ -n "$(ls "$logs")" ]; then
    echo "== sanitizer reports:"
    cat "$logs"/*
    add 0 1
else
    echo "== no sanitizer report"
fi
rm -rf "$logs"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
