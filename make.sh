#!/bin/sh
# make.sh TARGET... - `make TARGET...` on a machine that may have nothing
# yet: installs the Debian packages the targets need (make among them, see
# tools/deps.sh), then runs make. As root it installs; as another user it
# prints the apt-get line to run.
#
#   sh make.sh demo     build and run examples/services.lua
#   sh make.sh check    build and run the whole test suite
set -eu
cd "$(dirname "$0")"
[ $# -gt 0 ] || set -- all
uses=
for target in "$@"; do
    case $target in
    demo | check | bench) uses="$uses $target" ;;
    *) uses="$uses build" ;;
    esac
done
# shellcheck disable=SC2086 # one word per use
sh tools/deps.sh $uses
exec make "$@"
