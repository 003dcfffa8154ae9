-- Specs for the spec suite's own support code (spec/support/proc.c and
-- spec/support/helpers.lua).  Run from the repository root:
--   mkdir -p build/spec && gcc -std=c99 -D_GNU_SOURCE -Wall -Wextra -Wshadow \
--     -Wstrict-prototypes -Wmissing-prototypes -fPIC -shared \
--     $(pkg-config --cflags lua5.4) spec/support/proc.c -o build/spec/proc.so
--   busted --lua=lua5.4 spec/support_spec.lua
package.cpath = "./build/spec/?.so;" .. package.cpath
package.path = "./spec/support/?.lua;" .. package.path

local proc = require "proc"
local H = require "helpers"

local function contains(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

describe("proc", function()
  setup(function()
    assert.is_true(proc.set_subreaper())
  end)

  after_each(function()
    H.teardown()
  end)

  it("spawns, signals and waits for a long-running child", function()
    local pid = assert(proc.spawn{ argv = { "sleep", "30" } })
    assert.is_true(proc.alive(pid))
    assert.are.equal(pid, proc.getpgid(pid)) -- newpgrp defaults to true

    local t0 = proc.now()
    local st, err = proc.wait(pid, 0.1)
    local dt = proc.now() - t0
    assert.is_nil(st)
    assert.are.equal("timeout", err)
    assert.is_true(dt >= 0.09 and dt < 1, "waited " .. dt .. "s")

    assert.is_true(proc.kill(pid, "TERM"))
    assert.are.same({ signal = proc.signum("SIGTERM") }, proc.wait(pid, 5))
    assert.is_false(proc.alive(pid))

    local none, msg = proc.wait(pid, 1)
    assert.is_nil(none)
    assert.are.equal("not a child", msg)
  end)

  it("reports exit codes and exec failures", function()
    local pid = assert(proc.spawn{ argv = { "sh", "-c", "exit 3" } })
    assert.are.same({ code = 3 }, proc.wait(pid))

    local bad, msg, errno = proc.spawn{ argv = { "/nonexistent/cotylua-xyz" } }
    assert.is_nil(bad)
    assert.are.equal("exec /nonexistent/cotylua-xyz: No such file or directory", msg)
    assert.are.equal(2, errno)

    assert.has_error(function() proc.spawn{ argv = {} } end)
    assert.has_error(function() proc.kill(1, "NOPE") end)
  end)

  it("maps signal names", function()
    assert.are.equal(15, proc.signum("TERM"))
    assert.are.equal(15, proc.signum("SIGTERM"))
    assert.are.equal(9, proc.signum("KILL"))
    assert.are.equal(1, proc.signum("HUP"))
    assert.are.equal(proc.signum("USR1"), proc.signum("SIGUSR1"))
    assert.has_error(function() proc.signum("BOGUS") end)
  end)

  it("gives children a clean slate: env, cwd, fds, signals", function()
    local dir = H.tmpdir()
    -- io.open fds are not CLOEXEC: the child must still not inherit them
    local leak = assert(io.open(dir .. "/leak", "w"))
    local pid = assert(proc.spawn{
      argv = { "sh", "-c", 'echo "$FOO $(pwd)"; exec sleep 30' },
      env = { "FOO=bar", "PATH=/usr/bin:/bin" },
      cwd = dir,
      stdout = dir .. "/out",
    })
    H.wait_until(function() return H.read(dir .. "/out") ~= "" end, 5, "output")
    leak:close()
    assert.are.equal("bar " .. dir .. "\n", H.read(dir .. "/out"))
    H.wait_until(function() return H.comm(pid) == "sleep" end, 5, "exec sleep")
    -- the kernel names the new program before it closes the old one's
    -- close-on-exec fds: wait for the exec to be over, then look
    pcall(H.wait_until, function() return #H.fds(pid) == 3 end, 2)
    assert.are.same({ 0, 1, 2 }, H.fds(pid))
    local status = H.proc_status(pid)
    assert.are.equal("0000000000000000", status.SigBlk)
    assert.are.equal("0000000000000000", status.SigIgn)
    assert.are.equal(tostring(proc.getpid()), status.PPid)
    assert.are.equal("sleep 30", H.cmdline(pid))
    assert.is_true(contains(H.children(proc.getpid()), pid))
    assert.are.equal(dir, proc.readlink("/proc/" .. pid .. "/cwd"))
    assert.are.same({ pid }, H.procs_in(dir))
  end)

  it("reads from pipes with a timeout", function()
    local r, w = proc.pipe()
    local s, err = proc.read(r, 10, 0.05)
    assert.is_nil(s)
    assert.are.equal("timeout", err)
    assert.are.equal(5, proc.write(w, "hello"))
    assert.are.equal("hello", proc.read(r, 10, 1))
    assert.is_true(proc.close(w))
    assert.are.equal("", proc.read(r, 10, 1))
    proc.close(r)
  end)

  it("receives datagrams on a unix socket", function()
    local dir = H.tmpdir()
    local fd = assert(proc.dgram_socket(dir .. "/notify"))
    local none, err = proc.recv(fd, 0.05)
    assert.is_nil(none)
    assert.are.equal("timeout", err)
    assert.are.equal(7, proc.send(dir .. "/notify", "READY=1"))
    assert.are.equal("READY=1", proc.recv(fd, 1))
    proc.close(fd)
  end)
end)

describe("helpers", function()
  after_each(function()
    H.teardown()
  end)

  it("knows where the repository is", function()
    assert.are.equal(H.root, proc.realpath("."))
    assert.is_truthy(H.bin:find("cotylua", 1, true))
  end)

  it("wait_until returns the value or raises a timeout error", function()
    local n = 0
    assert.are.equal(3, H.wait_until(function()
      n = n + 1
      return n >= 3 and n
    end, 1, "counter"))

    local t0 = proc.now()
    local ok, err = pcall(H.wait_until, function() return false end, 0.05, "pigs to fly")
    assert.is_false(ok)
    assert.is_truthy(err:find("timed out after 0.05s waiting for: pigs to fly", 1, true))
    assert.is_true(proc.now() - t0 < 1)
  end)

  it("reads and writes files", function()
    local dir = H.tmpdir()
    assert.are.equal("", H.read(dir .. "/missing"))
    local path = H.app(dir, "return {}\n")
    assert.are.equal(dir .. "/services.lua", path)
    assert.are.equal("return {}\n", H.read(path))
  end)

  it("starts processes with a scrubbed environment and logs", function()
    local dir = H.tmpdir()
    local p = H.start{
      dir = dir,
      argv = { "sh", "-c", 'env > env.txt; echo out; echo err >&2; echo "ready $$" >> "$EVENTS"; exit 7' },
      env = { "FOO=bar", "LANG=override" },
    }
    assert.are.same({ code = 7 }, p:wait(5))
    assert.are.same({ code = 7 }, p:wait()) -- cached
    assert.are.equal("out\n", p:stdout())
    assert.are.equal("err\n", p:stderr())
    assert.are.equal(tostring(p.pid), p:wait_event("^ready (%d+)$", 1))
    assert.are.equal(1, p:count_events("^ready"))
    assert.are.same({ "ready " .. p.pid }, p:events())

    local env = {}
    for k, v in H.read(dir .. "/env.txt"):gmatch("([%w_]+)=([^\n]*)") do env[k] = v end
    assert.are.equal("bar", env.FOO)
    assert.are.equal("override", env.LANG)
    assert.are.equal(dir .. "/events.log", env.EVENTS)
    assert.are.equal(H.events_file(dir), env.EVENTS)
    local allowed = { PATH = 1, HOME = 1, TMPDIR = 1, LANG = 1, EVENTS = 1, FOO = 1,
                      ASAN_OPTIONS = 1, UBSAN_OPTIONS = 1, LSAN_OPTIONS = 1,
                      LD_PRELOAD = 1, PWD = 1, SHLVL = 1, _ = 1, OLDPWD = 1,
                      RUNTIME_DIRECTORY = 1 }
    for k in pairs(env) do
      assert.is_truthy(allowed[k], "unexpected env var " .. k)
    end
  end)

  it("runs lua5.4 with LUA_PATH pointing into the repository", function()
    local dir = H.tmpdir()
    H.write(dir .. "/main.lua", 'print(os.getenv("LUA_PATH")); print(os.getenv("LUA_CPATH"))')
    local p = H.start{ dir = dir, lua = true, file = dir .. "/main.lua" }
    assert.are.same({ code = 0 }, p:wait(5))
    local out = p:stdout()
    if not os.getenv("COTYLUA_LUA_PATH") then
      assert.is_truthy(out:find(H.root .. "/lua/?.lua", 1, true))
    end
    if not os.getenv("COTYLUA_LUA_CPATH") then
      assert.is_truthy(out:find(H.root .. "/build/lib/?.so", 1, true))
    end
  end)

  it("wait_event times out with a helpful error", function()
    local dir = H.tmpdir()
    local p = H.start{ dir = dir, argv = { "sh", "-c", 'echo one >> "$EVENTS"; echo oops >&2' } }
    p:wait(5)
    assert.are.equal("one", p:wait_event("^one$", 1))
    local ok, err = pcall(p.wait_event, p, "^two$", 0.05)
    assert.is_false(ok)
    assert.is_truthy(err:find("timed out after 0.05s", 1, true))
    assert.is_truthy(err:find("oops", 1, true))
    -- `after` skips already-seen lines
    local ok2 = pcall(p.wait_event, p, "^one$", 0.05, 1)
    assert.is_false(ok2)
  end)

  it("cleanup kills leftovers, counts them and reaps", function()
    local dir = H.tmpdir()
    -- sh + two background sleeps, all in the handle's process group
    local p = H.start{
      dir = dir,
      argv = { "sh", "-c", 'sleep 30 & sleep 30 & echo started >> "$EVENTS"; wait' },
    }
    p:wait_event("^started$")
    -- a stray in its own process group, found only by its cwd
    local stray = assert(proc.spawn{ argv = { "sleep", "30" }, cwd = dir })

    H.wait_until(function() return #H.children(p.pid) == 2 end, 5, "two sleeps")
    local inside = H.wait_until(function()
      local l = H.procs_in(dir)
      return #l == 4 and l
    end, 5, "four processes in dir")
    assert.is_true(contains(inside, p.pid))
    assert.is_true(contains(inside, stray))

    assert.are.equal(4, H.cleanup(dir))
    assert.are.same({}, H.procs_in(dir))
    assert.are.same({ signal = 9 }, p:wait(1))
    assert.is_false(proc.alive(stray))
    assert.is_false(proc.alive(p.pid))

    -- nothing left: a second cleanup kills nothing
    assert.are.equal(0, H.cleanup(dir))
  end)

  it("teardown cleans up and removes the temporary dirs", function()
    local dir = H.tmpdir()
    local p = H.start{ dir = dir, argv = { "sleep", "30" } }
    assert.is_true(proc.alive(p.pid))
    assert.are.equal(1, H.teardown())
    assert.is_false(proc.alive(p.pid))
    assert.is_nil(io.open(dir, "r"))
  end)
end)
