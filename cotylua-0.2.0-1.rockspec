-- cotylua 0.2.0: the release rockspec, whose source is the git tag
-- v0.2.0. `sh tools/pack-rock.sh` packs it into a source rock from a
-- checkout (no network), and `luarocks --lua-version=5.4 install
-- ./cotylua-0.2.0-1.src.rock` builds it with the Makefile (the "make"
-- backend) and installs the cotylua command, the cotylua.core C module
-- and the cotylua Lua module.
rockspec_format = "3.0"
package = "cotylua"
version = "0.2.0-1"

source = {
  url = "git+https://github.com/cotylua/cotylua.git",
  tag = "v0.2.0",
}

description = {
  summary = "A service manager for long-running services written in Lua",
  detailed = [[
    cotylua forks and supervises worker processes that each run a Lua
    service table (init, run, terminate, reload): restarts with a
    throttle, signal routing, graceful shutdown, sd_notify, socket
    activation and shared listening sockets. The same engine runs as the
    cotylua command and as require("cotylua").
  ]],
  labels = { "daemon", "process", "supervisor", "systemd" },
}

dependencies = {
  "lua >= 5.4, < 5.5",
}

external_dependencies = {
  LIBSYSTEMD = {
    header = "systemd/sd-daemon.h",
    library = "systemd",
  },
}

build = {
  type = "make",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LUA = "$(LUA)",
    SD_CFLAGS = "-I$(LIBSYSTEMD_INCDIR)",
  },
  install_variables = {
    PREFIX = "$(PREFIX)",
    BINDIR = "$(BINDIR)",
    LIBDIR = "$(LIBDIR)",
    LUADIR = "$(LUADIR)",
    MANDIR = "$(PREFIX)/doc/man",
    SHAREDIR = "$(PREFIX)/share",
  },
  copy_directories = { "examples" },
}
