#!/bin/sh
# tools/deps.sh [--print] WHAT... - the Debian 12 packages that each use
# of the checkout needs, in one place. Installs the missing ones (as root,
# without recommends) or, for another user or with --print, prints the
# apt-get line to run and fails if any is missing.
#
#   build   compile the binary and the module (make, gcc, Lua 5.4, libsystemd headers)
#   demo    build, then run examples/services.lua
#   check   build, then the whole suite (busted, luacheck, valgrind, the
#           real libraries and clients the specs drive)
#   bench   build, then the benchmark against Python's cotyledon
#   rock    `luarocks --lua-version=5.4 install` of the source rock
set -eu

build="make gcc libc6-dev pkg-config lua5.4 liblua5.4-dev libsystemd-dev"
demo="$build"
check="$build lua-busted lua-check lua-socket luarocks systemd procps valgrind mandoc groff
    lua-cqueues lua-luv lua-http lua-copas wrk curl"
bench="$build python3-cotyledon lua-socket lua-cqueues lua-luv lua-http wrk"
rock="$build luarocks"

print=
if [ "${1:-}" = --print ]; then print=1; shift; fi
[ $# -gt 0 ] || { echo "usage: tools/deps.sh [--print] build|demo|check|bench|rock..." >&2; exit 2; }

want=
for what in "$@"; do
    case $what in
    build) want="$want $build" ;;
    demo) want="$want $demo" ;;
    check) want="$want $check" ;;
    bench) want="$want $bench" ;;
    rock) want="$want $rock" ;;
    *) echo "tools/deps.sh: unknown use '$what' (build, demo, check, bench or rock)" >&2; exit 2 ;;
    esac
done

missing=
for p in $want; do
    case " $missing " in *" $p "*) continue ;; esac
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -n "$missing" ] || exit 0

if [ -n "$print" ] || [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages; run as root:"
    echo "  apt-get install -y --no-install-recommends$missing"
    exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # one word per package
apt-get install -y -qq --no-install-recommends $missing >/dev/null
