# cotylua: a service manager for long-running services written in Lua.
#
#   make            build the binary, the cotylua.core module and the spec helper
#   make demo       run examples/services.lua in the foreground (Ctrl-C stops it)
#   make unit       the C unit tests alone (no sanitizer build)
#   make check      unit tests, specs, and the specs again under ASan/UBSan
#   make install    PREFIX=/usr/local DESTDIR=
#   make deps       install the missing Debian packages (tools/deps.sh) for
#                   USE=build|demo|check|bench|rock (default: check), or print the line
#
# On a machine without make, `sh make.sh TARGET` installs it first.
#
# luarocks passes LUA_INCDIR, LUA_LIBDIR, LIBFLAG, CFLAGS, PREFIX, BINDIR,
# LIBDIR and LUADIR; without them pkg-config gives the Lua flags.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib/lua/5.4
LUADIR ?= $(PREFIX)/share/lua/5.4
SHAREDIR ?= $(PREFIX)/share
MANDIR ?= $(SHAREDIR)/man
LUA ?= lua5.4
BUSTED ?= busted
CC ?= cc
CFLAGS ?= -O2 -g
LIBFLAG ?= -shared

ifdef LUA_INCDIR
LUA_CFLAGS = -I$(LUA_INCDIR)
else
LUA_CFLAGS := $(shell pkg-config --cflags lua5.4 2>/dev/null)
endif
LUA_LIBS := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)
# libsystemd's headers only: the library itself is opened on first use
# (src/sdlib.c), so that outside systemd the manager does not map it.
SD_CFLAGS := $(shell pkg-config --cflags libsystemd 2>/dev/null)
DL_LIBS ?=

# Lua 5.4's own warning set (the list in its makefile), less the ones that
# are for C89 (-Wdeclaration-after-statement), for C++ (-Wc++-compat) or
# for gcc alone (-Wlogical-op), so that clang builds as quietly.
WARN = -Wall -Wextra -Wshadow -Wundef -Wwrite-strings -Wredundant-decls \
    -Wdisabled-optimization -Wdouble-promotion -Wmissing-declarations \
    -Wmissing-prototypes -Wnested-externs -Wstrict-prototypes -Wold-style-definition
ALL_CFLAGS = -std=c99 -fPIC $(WARN) $(CFLAGS) $(LUA_CFLAGS) $(SD_CFLAGS) $(EXTRA_CFLAGS)

B ?= build
ENGINE = log fdscan sdlib journal loop restart proctitle notify sockets manager mgr_run mgr_sockets readiness selfpipe worker identity lcall lcotylua
ENGINE_OBJS = $(ENGINE:%=$(B)/obj/%.o)
BIN = $(B)/bin/cotylua
MOD = $(B)/lib/cotylua/core.so
SPEC_HELPER = $(B)/spec/proc.so
UNIT = test_restart test_loop test_log test_identity

.PHONY: all demo unit check install uninstall clean deps
all: $(BIN) $(MOD) $(SPEC_HELPER)

$(B)/obj/%.o: src/%.c src/*.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/obj/embedded.c: lua/cotylua.lua tools/embed.lua
	@mkdir -p $(@D)
	$(LUA) tools/embed.lua lua/cotylua.lua coty_embedded_lua > $@

$(B)/obj/embedded_loop.c: lua/cotylua/loop.lua tools/embed.lua
	@mkdir -p $(@D)
	$(LUA) tools/embed.lua lua/cotylua/loop.lua coty_embedded_loop > $@

$(B)/obj/embedded%.o: $(B)/obj/embedded%.c
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# Symbols bound at load time, in the manager, rather than on first use in
# each worker (a lazy binding writes to the GOT: a page copied per worker).
BIND_NOW = -Wl,-z,now

$(BIN): $(ENGINE_OBJS) $(B)/obj/main.o $(B)/obj/embedded.o $(B)/obj/embedded_loop.o
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) $(LDFLAGS) $(BIND_NOW) -o $@ $^ $(LUA_LIBS) $(DL_LIBS) -lm

# -z nodelete: the module holds process-wide state (titles, environ,
# the manager), so lua_close must not unmap it.
$(MOD): $(ENGINE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(LIBFLAG) $(CFLAGS) $(EXTRA_CFLAGS) $(LDFLAGS) $(BIND_NOW) -Wl,-z,nodelete -o $@ $^ $(DL_LIBS) -lm

$(SPEC_HELPER): spec/support/proc.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) -o $@ $<

$(B)/test/%: test/%.c $(ENGINE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Isrc -o $@ $< $(ENGINE_OBJS) $(LUA_LIBS) $(DL_LIBS) -lm

# The packages come first, then a new make that reads the Lua and
# libsystemd flags from pkg-config once they are installed.
# Ctrl-C stops the manager at once, with status 1: that is the demo's end.
demo:
	sh tools/deps.sh demo
	$(MAKE) all
	$(BIN) examples/services.lua || test $$? = 1

# The C unit tests against the normal build; each ends "N passed, N failed".
unit: $(UNIT:%=$(B)/test/%)
	@for t in $^; do ./$$t || exit 1; done

# The whole suite: C unit tests, the specs against the normal build, then
# the specs against an ASan/UBSan build. Ends with "N passed, N failed".
check:
	sh tools/deps.sh check
	$(MAKE) all
	$(MAKE) B=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	    EXTRA_CFLAGS="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow" \
	    all $(UNIT:%=build-asan/test/%)
	sh tools/check.sh $(UNIT:%=build-asan/test/%)

EXAMPLES = $(wildcard examples/*.lua)
UNITS = $(wildcard examples/systemd/*.service examples/systemd/*.socket)

install: $(BIN) $(MOD)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/cotylua $(DESTDIR)$(LUADIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(SHAREDIR)/cotylua/examples/systemd
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/cotylua
	install -m 755 $(MOD) $(DESTDIR)$(LIBDIR)/cotylua/core.so
	install -m 644 lua/cotylua.lua $(DESTDIR)$(LUADIR)/cotylua.lua
	install -d $(DESTDIR)$(LUADIR)/cotylua
	install -m 644 lua/cotylua/loop.lua $(DESTDIR)$(LUADIR)/cotylua/loop.lua
	install -m 644 doc/cotylua.1 $(DESTDIR)$(MANDIR)/man1/cotylua.1
	install -m 644 $(EXAMPLES) $(DESTDIR)$(SHAREDIR)/cotylua/examples
	install -m 644 $(UNITS) $(DESTDIR)$(SHAREDIR)/cotylua/examples/systemd

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cotylua $(DESTDIR)$(LIBDIR)/cotylua/core.so \
	    $(DESTDIR)$(LUADIR)/cotylua.lua $(DESTDIR)$(LUADIR)/cotylua/loop.lua \
	    $(DESTDIR)$(MANDIR)/man1/cotylua.1
	rm -rf $(DESTDIR)$(SHAREDIR)/cotylua
	-rmdir $(DESTDIR)$(LIBDIR)/cotylua $(DESTDIR)$(LUADIR)/cotylua 2>/dev/null

clean:
	rm -rf build build-asan

USE ?= check
deps:
	sh tools/deps.sh $(USE)

# cotylua against Python's cotyledon, side by side (bench/README.md):
# prints the table and writes bench/RESULTS.md; QUICK=1 is the short run
# that CI does (small N, one repeat, results in build/bench/).
# The floor it is also measured against: a minimal C manager with a Lua
# state (bench/floor.c), built for the benchmark only.
FLOOR = $(B)/bench/floor

.PHONY: bench bench-floor
bench-floor: $(FLOOR)

$(FLOOR): bench/floor.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LUA_LIBS) -lm

bench:
	sh tools/deps.sh bench
	$(MAKE) all bench-floor
	$(LUA) bench/bench.lua $(if $(QUICK),--quick)

# Requests per second of the lua-http and luv examples under cotylua
# against the same server alone (bench/http.lua; writes build/bench/HTTP.md).
.PHONY: bench-http
bench-http: all
	$(LUA) bench/http.lua
