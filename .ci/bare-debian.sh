#!/usr/bin/env bash
# .ci/bare-debian.sh - the README's two commands, copied from the README as
# they stand, on a minimal Debian 12 (debootstrap --variant=minbase, plus
# git and ca-certificates), in a fresh clone of this checkout; then the
# source rock, installed with luarocks in another fresh minimal root; then
# the Dockerfile's two stages, each in a fresh minimal root (no container
# engine runs here), and the image's command answering a connection.
# Run as root. Prints what each step took and ends with "N passed, N
# failed" (demo, check, rock, container).
#
# The base root is made once and kept as a tarball in $COTYLUA_CI_CACHE
# (default /var/cache/cotylua-ci); every run unpacks a new copy of it.
set -eu
cd "$(dirname "$0")/.."
here=$PWD
cache=${COTYLUA_CI_CACHE:-/var/cache/cotylua-ci}
mirror=${COTYLUA_CI_MIRROR:-http://deb.debian.org/debian}
base=$cache/bookworm-minbase.tar
passed=0
failed=0
roots=

pass() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { failed=$((failed + 1)); echo "FAILED: $*"; }

# The base root, made by debootstrap on first use.
make_base() {
    [ -s "$base" ] && return 0
    mkdir -p "$cache"
    tmp=$(mktemp -d "$cache/debootstrap.XXXXXX")
    echo "== debootstrap --variant=minbase bookworm (once, kept in $base)"
    debootstrap --variant=minbase --include=git,ca-certificates bookworm "$tmp" "$mirror" \
        >"$tmp.log" 2>&1 || { tail -n 20 "$tmp.log"; rm -rf "$tmp"; return 1; }
    tar -C "$tmp" -cf "$base.new" . && mv "$base.new" "$base"
    rm -rf "$tmp" "$tmp.log"
}

# A fresh root from the base in $root: the kernel's file systems mounted,
# the host's resolver, and a clean clone of this checkout in /root/cotylua.
new_root() {
    root=$(mktemp -d /var/tmp/cotylua-bare.XXXXXX)
    roots="$roots $root"
    tar -C "$root" -xf "$base"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
    mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
    mount -t tmpfs tmpfs "$root/run"
    mount -t tmpfs tmpfs "$root/tmp"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    git clone -q "$here" "$root/root/cotylua"
}

# Sends signal $2 to the processes in root $1 whose command line starts
# with $3.
signal_in_root() {
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$1" ] || continue
        case "$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)" in
        "$3"*) kill "-$2" "${p#/proc/}" 2>/dev/null ;;
        esac
    done
}

# Ends every process whose root is $1, then unmounts and removes it; a
# root that is still mounted is never removed.
drop_root() {
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$1" ] && kill -KILL "${p#/proc/}" 2>/dev/null
    done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        grep -q " $1/" /proc/mounts || break
        umount -R "$1/proc" "$1/sys" "$1/dev" "$1/run" "$1/tmp" 2>/dev/null || sleep 0.2
    done
    if grep -q " $1/" /proc/mounts; then
        echo "bare-debian: $1 is still mounted; left in place" >&2
    else
        rm -rf "$1"
    fi
}
cleanup() { for r in $roots; do drop_root "$r"; done; }
trap cleanup EXIT
trap 'exit 1' INT TERM

in_root() { r=$1; shift; chroot "$r" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 /bin/sh -c "$*"; }

# The two commands, as the README's "The two commands" block gives them.
readme_command() {
    sed -n '/^## The two commands/,/^## /p' README.md | sed -n "s/^\\(sh make\\.sh $1\\) *#.*/\\1/p" | head -n 1
}

now() { date +%s.%N; }
took() { awk "BEGIN { printf \"%.0f s\", $(now) - $1 }"; }

make_base

demo=$(readme_command demo)
check=$(readme_command check)
[ -n "$demo" ] && [ -n "$check" ] || { echo "README: the two commands not found"; exit 1; }

# The steps, all by default; COTYLUA_CI_STEPS picks some ("readme rock
# container").
stage_lines() { # the instructions of stage $1 (1, 2, ...)
    awk -v n="$1" '/^FROM /{k++} k==n && !/^#/ && NF' Dockerfile
}
run_stage() { # reads stage lines; $1: its root; sets $cmd and $envs
    local r=$1 op args from src dst
    cmd= envs=
    while read -r op args; do
        case $op in
        FROM | EXPOSE) ;;
        RUN) in_root "$r" "cd / && $args" || return 1 ;;
        ENV) envs="$envs $args" ;;
        CMD) cmd=$(echo "$args" | sed 's/^\[//; s/\]$//; s/", *"/ /g; s/"//g') ;;
        COPY)
            read -r from src dst <<<"$args"
            if [ "${from#--from=}" != "$from" ]; then
                mkdir -p "$r$dst" && cp -a "$build_root$src/." "$r$dst/" || return 1
            elif [ "$from" = . ]; then # the checkout, build trees left out (.dockerignore)
                git clone -q "$here" "$r$src" || return 1
            else
                mkdir -p "$(dirname "$r$src")" && cp "$from" "$r$src" || return 1
            fi ;;
        *) echo "Dockerfile: $op is not carried out here"; return 1 ;;
        esac
    done
}

step_readme() {
    # 1. The demo: it runs in the foreground until stopped; it is up when the
    # manager logs that every worker is ready, then SIGINT (as kill -INT on
    # the master) ends it, and the command must exit 0.
    new_root
    echo "== bare Debian 12: $demo"
    t0=$(now)
    in_root "$root" "cd /root/cotylua && exec $demo" >"$root/tmp/demo.log" 2>&1 &
    demo_pid=$!
    up=
    while kill -0 "$demo_pid" 2>/dev/null; do
        if grep -q 'ready: 3 workers' "$root/tmp/demo.log"; then up=1; break; fi
        sleep 0.5
    done
    if [ -n "$up" ]; then
        echo "demo: installed, built and running after $(took "$t0")"
        signal_in_root "$root" INT "cotylua: master process"
    fi
    status=0
    wait "$demo_pid" || status=$?
    if [ -n "$up" ] && [ "$status" = 0 ]; then pass "$demo"; else
        tail -n 30 "$root/tmp/demo.log"
        fail "$demo (status $status)"
    fi

    # 2. The whole suite, in the same root after the demo (the check adds its
    # own packages to the demo's).
    echo "== bare Debian 12: $check"
    t0=$(now)
    status=0
    in_root "$root" "cd /root/cotylua && $check" >"$root/tmp/check.log" 2>&1 || status=$?
    line=$(tail -n 1 "$root/tmp/check.log")
    echo "check: '$line' (exit $status) after $(took "$t0")"
    if [ "$status" = 0 ] && echo "$line" | grep -q '^[0-9]* passed, 0 failed$'; then pass "$check"; else
        grep -E 'FAILED|Failure|Error|failed' "$root/tmp/check.log" | tail -n 40
        tail -n 60 "$root/tmp/check.log"
        fail "$check"
    fi
    drop_root "$root"
    roots=
}

step_rock() {
    # 3. The source rock, packed here from the release rockspec, installed
    # offline from the file in another fresh root with only what luarocks
    # needs to build it; then the installed command runs the example and
    # plain lua5.4 finds the module with only `luarocks path` set.
    echo "== bare Debian 12: luarocks install ./cotylua-0.2.0-1.src.rock"
    rock=$(sh tools/pack-rock.sh "$(mktemp -d)" | tail -n 1)
    new_root
    cp "$rock" "$root/root/"
    t0=$(now)
    status=0
    in_root "$root" '
    set -e
    cd /root/cotylua && sh tools/deps.sh rock && cd /root
    luarocks --lua-version=5.4 install ./cotylua-0.2.0-1.src.rock
    ex=$(luarocks --lua-version=5.4 show --rock-dir cotylua)/examples/services.lua
    cotylua --check "$ex"
    cotylua "$ex" > /tmp/run.log 2>&1 &
    pid=$!
    n=0
    until grep -q "ready: 3 workers" /tmp/run.log; do
        n=$((n + 1)); [ $n -lt 100 ] || { cat /tmp/run.log; exit 1; }; sleep 0.1
    done
    kill -TERM $pid
    wait $pid
    grep -q "stopped" /tmp/run.log
    eval "$(luarocks --lua-version=5.4 path)"
    lua5.4 -e "local c = require(\"cotylua\"); assert(c.now() > 0); print(\"require(cotylua) from lua5.4: ok\")"
    ' >"$root/tmp/rock.log" 2>&1 || status=$?
    tail -n 12 "$root/tmp/rock.log"
    rm -rf "$(dirname "$rock")"
    if [ "$status" = 0 ]; then pass "luarocks install of the source rock ($(took "$t0"))"; else
        fail "luarocks install of the source rock"
    fi

    drop_root "$root"
    roots=
}

step_container() {
    # 4. The Dockerfile: each stage's instructions (RUN, COPY, ENV, EXPOSE,
    # CMD; one per line) carried out in its own fresh root, the build stage's
    # /usr/local copied into the runtime's as COPY --from says; then the
    # command of the image serves a connection and stops on SIGTERM.
    echo "== bare Debian 12: the Dockerfile's stages"
    t0=$(now)
    status=0
    new_root
    build_root=$root
    stage_lines 1 > "$build_root/tmp/stage"
    run_stage "$build_root" < "$build_root/tmp/stage" > "$build_root/tmp/build.log" 2>&1 || status=$?
    new_root
    runtime_root=$root
    stage_lines 2 > "$runtime_root/tmp/stage"
    [ "$status" = 0 ] && { run_stage "$runtime_root" < "$runtime_root/tmp/stage" > "$runtime_root/tmp/runtime.log" 2>&1 || status=$?; }
    port=$((17000 + $$ % 1000))
    reply=
    if [ "$status" = 0 ] && [ -n "$cmd" ]; then
        echo "image: $cmd (with$envs, ECHO_LISTEN=tcp://127.0.0.1:$port); runtime root $(du -smx "$runtime_root" | cut -f1) MiB"
        in_root "$runtime_root" "exec env$envs ECHO_LISTEN=tcp://127.0.0.1:$port $cmd" > "$runtime_root/tmp/run.log" 2>&1 &
        run_pid=$!
        for _ in $(seq 100); do grep -q "ready: " "$runtime_root/tmp/run.log" && break; sleep 0.1; done
        if exec 3<>"/dev/tcp/127.0.0.1/$port"; then
            printf 'hello from the host\n' >&3
            read -r -t 5 reply <&3 || true
            exec 3>&-
        fi
        signal_in_root "$runtime_root" TERM "cotylua: master process"
        wait "$run_pid" || status=$?
    fi
    tail -n 5 "$runtime_root/tmp/run.log" 2>/dev/null
    if [ "$status" = 0 ] && [ "$reply" = "hello from the host" ]; then
        pass "the Dockerfile's stages, and its command served a connection ($(took "$t0"))"
    else
        tail -n 20 "$build_root/tmp/build.log" "$runtime_root/tmp/runtime.log" 2>/dev/null
        fail "the Dockerfile (status $status, reply '$reply')"
    fi
}

for step in ${COTYLUA_CI_STEPS:-readme rock container}; do "step_$step"; done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
