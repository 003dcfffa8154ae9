-- Both install paths, for real (tag: install; the normal build only):
-- `make install DESTDIR=... PREFIX=...` then `make uninstall`, and
-- `luarocks --lua-version=5.4 --tree=... make` from a copy of the
-- checkout. Each installed cotylua checks a file, runs a short lifecycle,
-- and the module loads from a plain lua5.4 with only that tree on its paths.
local H = require("helpers")

local APP = [[
local cotylua = require("cotylua")
local function ev(s) local f = io.open(os.getenv("EVENTS"), "a") f:write(s, "\n") f:close() end
local S = { name = "installed" }
function S:run() ev("run") cotylua.sleep(1e9) end
function S:reload() ev("reload") end
function S:terminate() ev("term") end
local m = cotylua.manager()
m:add(S, { workers = 2 })
return m
]]

-- Runs argv in dir (default: a fresh one, which also takes the output
-- logs) with env; returns the status and the output.
local function run(dir, argv, env, timeout)
  local p = H.start{ dir = dir or H.tmpdir(), argv = argv, env = env }
  local st = assert(p:wait(timeout or 120), "timed out: " .. table.concat(argv, " "))
  return st, p:stdout() .. p:stderr()
end

-- --check, then start, SIGHUP, SIGTERM with the installed binary.
local function exercise(bin, env)
  local dir = H.tmpdir()
  local file = H.write(dir .. "/services.lua", APP)
  local st, out = run(dir, { bin, "--check", H.root .. "/examples/services.lua" }, env)
  assert.are.same({ code = 0 }, st, out)
  assert.matches("heavy", out)
  local p = H.start{ dir = dir, argv = { bin, file }, env = env }
  H.wait_until(function() return p:count_events("^run$") == 2 end, 10, "2 workers")
  assert(p:kill("HUP"))
  H.wait_until(function() return p:count_events("^reload$") == 2 end, 10, "2 reloads")
  assert(p:kill("TERM"))
  assert.are.same({ code = 0 }, p:wait(10))
  assert.are.equal(2, p:count_events("^term$"))
end

local function files_under(dir)
  local out = {}
  local f = assert(io.popen("find " .. dir .. " -type f | sort"))
  for line in f:lines() do out[#out + 1] = line:sub(#dir + 1) end
  f:close()
  return out
end

describe("install", function()

  it("make install DESTDIR= PREFIX= installs a working cotylua, and make uninstall removes it #install", function()
    local dest = H.tmpdir()
    local st, out = run(nil, { "make", "-s", "-C", H.root, "install", "DESTDIR=" .. dest, "PREFIX=/opt/coty" })
    assert.are.same({ code = 0 }, st, out)
    local files = table.concat(files_under(dest), "\n")
    for _, want in ipairs({ "/opt/coty/bin/cotylua", "/opt/coty/lib/lua/5.4/cotylua/core.so",
      "/opt/coty/share/lua/5.4/cotylua.lua", "/opt/coty/share/lua/5.4/cotylua/loop.lua",
      "/opt/coty/share/man/man1/cotylua.1",
      "/opt/coty/share/cotylua/examples/echo.lua",
      "/opt/coty/share/cotylua/examples/systemd/cotylua-echo.service" }) do
      assert.truthy(files:find(want, 1, true), want .. " not installed:\n" .. files)
    end
    local root = dest .. "/opt/coty"
    exercise(root .. "/bin/cotylua", {})
    local env = { "LUA_PATH=" .. root .. "/share/lua/5.4/?.lua", "LUA_CPATH=" .. root .. "/lib/lua/5.4/?.so" }
    st, out = run(nil, { "lua5.4", "-e", "assert(require('cotylua.loop').luv) print(require('cotylua')._VERSION)" }, env)
    assert.are.same({ code = 0 }, st, out)
    assert.matches("^cotylua %d", out)
    st, out = run(nil, { "make", "-s", "-C", H.root, "uninstall", "DESTDIR=" .. dest, "PREFIX=/opt/coty" })
    assert.are.same({ code = 0 }, st, out)
    assert.are.same({}, files_under(dest))
  end)

  it("luarocks make builds and installs into a tree that alone serves cotylua #install", function()
    local src, tree = H.tmpdir(), H.tmpdir()
    assert(os.execute(("tar -C %q --exclude=./build --exclude=./build-asan -cf - . | tar -C %q -xf -")
      :format(H.root, src)))
    local st, out = run(src, { "luarocks", "--lua-version=5.4", "--tree=" .. tree, "make" }, {}, 300)
    assert.are.same({ code = 0 }, st, out)
    assert.matches("cotylua scm%-1 is now installed", out)
    -- the man page where make install puts it: share/man under the prefix
    local man = {}
    for _, file in ipairs(files_under(tree)) do
      if file:find("/cotylua%.1$") then man[#man + 1] = file end
    end
    assert.are.same({ "/lib/luarocks/rocks-5.4/cotylua/scm-1/share/man/man1/cotylua.1" }, man)
    local env = {
      "LUA_PATH=" .. tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua",
      "LUA_CPATH=" .. tree .. "/lib/lua/5.4/?.so",
    }
    exercise(tree .. "/bin/cotylua", env)
    st, out = run(nil, { "lua5.4", "-e", "print(require('cotylua')._VERSION, package.searchpath('cotylua.core', package.cpath))" }, env)
    assert.are.same({ code = 0 }, st, out)
    assert.truthy(out:find(tree .. "/lib/lua/5.4/cotylua/core.so", 1, true), out)
  end)
end)
