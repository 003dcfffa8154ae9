-- A worker's identity and limits: user, group and supplementary groups,
-- umask, cwd, env, rlimits, nice and no_new_privs, applied between fork
-- and init; the manager binds what needs root first. The checks of names
-- and values need no root; what changes users runs as root only (CI is
-- root), with a system user and group made for these tests and removed
-- at the end, and is pending otherwise.
local H = require("helpers")
local proc = H.proc
local socket = require("socket")

local USER, EXTRA, GONE = "cotys" .. proc.getpid(), "cotyx" .. proc.getpid(), "cotyg" .. proc.getpid()

local function sh(cmd)
  return os.execute("(" .. cmd .. ") >/dev/null 2>&1") == true
end

-- Why the tests that change users cannot run here, or nil when they can.
local NOT_ROOT = proc.geteuid() ~= 0 and "needs root: it creates a user and changes the workers' uid"
  or not sh("command -v useradd && command -v groupadd") and "needs useradd and groupadd (Debian's passwd)"
  or nil
local ROOT = not NOT_ROOT

local function id_of(flag, name)
  return tonumber(assert(io.popen("id " .. flag .. " " .. name)):read("l"))
end

local function gid_of(group)
  return tonumber((assert(io.popen("getent group " .. group)):read("l") or ""):match("^[^:]*:[^:]*:(%d+)"))
end

local function add_user(name, groups)
  assert(sh("useradd --system --user-group --no-create-home --home-dir /nonexistent"
    .. " --shell /usr/sbin/nologin" .. (groups and " -G " .. groups or "") .. " " .. name),
    "useradd " .. name)
end

local function remove_user(name)
  sh("userdel --force " .. name) -- also while a worker still runs as it
  sh("groupdel " .. name) -- when the user's own group outlived it
end

-- A directory of the spec that the user's workers can reach, with an
-- events file they can append to.
local function open_dir(dir)
  assert(sh("chmod 0755 " .. dir))
  H.write(H.events_file(dir), "")
  assert(sh("chmod 0666 " .. H.events_file(dir)))
  return dir
end

local function run_as_user(body, env)
  local dir = open_dir(H.tmpdir())
  local e = { "PROC_SO=" .. H.root .. "/build/spec/proc.so", "T_USER=" .. USER }
  for _, kv in ipairs(env or {}) do e[#e + 1] = kv end
  return H.run_app(body, "binary", { dir = dir, env = e })
end

-- The 19 fields of /proc/PID/stat after the command name; nice is the 17th.
local function nice_of(pid)
  local rest = H.read("/proc/" .. pid .. "/stat"):match("%) (.*)$")
  local fields = {}
  for f in rest:gmatch("%S+") do fields[#fields + 1] = f end
  return tonumber(fields[17])
end

local function limits_of(pid, what)
  local soft, hard = H.read("/proc/" .. pid .. "/limits"):match(what .. "%s+(%S+)%s+(%S+)")
  return soft, hard
end

local function gone(pid)
  local st = H.proc_stat(pid)
  return not st or st.state == "Z"
end

-- A free privileged TCP port on 127.0.0.1 (bound then released).
local function privileged_port()
  for _ = 1, 50 do
    local port = math.random(600, 1000)
    local s = socket.bind("127.0.0.1", port)
    if s then
      s:close()
      return port
    end
  end
  error("no free port from 600 to 1000 on 127.0.0.1")
end

local IDENTITY = [[
local proc = package.loadlib(os.getenv("PROC_SO"), "luaopen_proc")()
local m = cotylua.manager()
m:add({
  name = "web",
  user = os.getenv("T_USER"),
  umask = "0027",
  cwd = os.getenv("T_CWD"),
  nice = 7,
  no_new_privs = true,
  env = { T_SET = "on", T_GONE = false },
  rlimits = { nofile = { soft = 1000, hard = 2000 }, core = 0 },
  init = function()
    local ok, err = proc.setuid(0)
    ev("init %d setuid0 %s %s env %s %s %s", cotylua.getpid(), tostring(ok), tostring(err),
      os.getenv("T_SET"), tostring(os.getenv("T_GONE")), os.getenv("USER"))
  end,
  run = function() cotylua.sleep(math.huge) end,
}, { workers = 2 })
return m
]]

describe("identity", function()
  math.randomseed(proc.getpid())

  lazy_setup(function()
    if ROOT then
      assert(sh("groupadd --system " .. EXTRA), "groupadd " .. EXTRA)
      add_user(USER, EXTRA)
    end
  end)

  lazy_teardown(function()
    if ROOT then
      remove_user(USER)
      remove_user(GONE)
      sh("groupdel " .. EXTRA)
    end
  end)

  it("runs the workers as the user, with its groups, umask, cwd, env, limits, nice and no_new_privs", function()
    if not ROOT then return pending(NOT_ROOT) end
    local cwd = open_dir(H.tmpdir())
    local p = run_as_user(IDENTITY, { "T_CWD=" .. cwd, "T_GONE=1" })
    local pids = {}
    for _ = 1, 2 do
      local pid = tonumber(p:wait_event("^init (%d+) ", 5, #pids))
      pids[#pids + 1] = pid
    end
    local uid, gid = id_of("-u", USER), id_of("-g", USER)
    local groups = { gid, gid_of(EXTRA) }
    table.sort(groups)
    for _, pid in ipairs(pids) do
      local st = H.proc_status(pid)
      assert.are.equal(("%d\t%d\t%d\t%d"):format(uid, uid, uid, uid), st.Uid)
      assert.are.equal(("%d\t%d\t%d\t%d"):format(gid, gid, gid, gid), st.Gid)
      assert.are.equal(table.concat(groups, " "), st.Groups:gsub("%s+$", ""))
      assert.are.equal("1", st.NoNewPrivs)
      assert.are.equal("0027", st.Umask)
      assert.are.same({ "1000", "2000" }, { limits_of(pid, "Max open files") })
      assert.are.same({ "0", "0" }, { limits_of(pid, "Max core file size") })
      assert.are.equal(7, nice_of(pid))
      assert.are.equal(cwd, proc.readlink("/proc/" .. pid .. "/cwd"))
      -- the process table shows the worker under its user
      assert.are.equal(USER, assert(io.popen("ps -o user:32= -p " .. pid)):read("l"))
    end
    -- setuid(0) failed in the worker; the environment is the one asked for
    assert.are.equal(2, p:count_events("^init %d+ setuid0 nil setuid: Operation not permitted env on nil "
      .. USER .. "$"))
    -- the manager keeps root
    assert.matches("^0%s", H.proc_status(p.pid).Uid)
    H.stop(p)
  end)

  it("with a group alone, keeps the user and has that group only", function()
    if not ROOT then return pending(NOT_ROOT) end
    local p = run_as_user([[
local m = cotylua.manager()
m:add({ name = "web", group = os.getenv("T_GROUP"), init = function() ev("init %d", cotylua.getpid()) end,
  run = function() cotylua.sleep(math.huge) end })
return m
]], { "T_GROUP=" .. EXTRA })
    local pid = tonumber(p:wait_event("^init (%d+)$"))
    local st, gid = H.proc_status(pid), gid_of(EXTRA)
    assert.are.equal("0\t0\t0\t0", st.Uid)
    assert.are.equal(("%d\t%d\t%d\t%d"):format(gid, gid, gid, gid), st.Gid)
    assert.are.equal(tostring(gid), st.Groups:gsub("%s+$", ""))
    H.stop(p)
  end)

  it("binds a privileged port as root and serves it from workers that run as the user (examples/echo.lua)", function()
    if not ROOT then return pending(NOT_ROOT) end
    local port = privileged_port()
    local p = H.start{ dir = open_dir(H.tmpdir()), file = H.root .. "/examples/echo.lua",
      env = { "ECHO_LISTEN=tcp://127.0.0.1:" .. port, "ECHO_USER=" .. USER } }
    H.wait_until(function() return p:stderr():find("ready: 2 workers", 1, true) end, 5, "the workers")
    local c = assert(socket.connect("127.0.0.1", port))
    c:settimeout(5)
    assert(c:send("whoami\n"))
    local pid = tonumber(assert(c:receive("*l")):match("pid (%d+)$"))
    c:close()
    assert.matches("^" .. id_of("-u", USER) .. "%s", H.proc_status(pid).Uid)
    H.stop(p)
  end)

  it("gives the unix sockets it binds the owner and mode asked for", function()
    if not ROOT then return pending(NOT_ROOT) end
    local dir = open_dir(H.tmpdir())
    local p = run_as_user([[
local m = cotylua.manager()
m:add({ name = "web", user = os.getenv("T_USER"), listen = "unix:" .. os.getenv("T_SOCK"),
  listen_owner = os.getenv("T_USER") .. ":" .. os.getenv("T_GROUP"), listen_mode = "0660",
  init = function() ev("init") end, run = function() cotylua.sleep(math.huge) end })
return m
]], { "T_SOCK=" .. dir .. "/s.sock", "T_GROUP=" .. EXTRA })
    p:wait_event("^init$")
    local st = assert(io.popen("stat -c '%U:%G %a' " .. dir .. "/s.sock")):read("l")
    assert.are.equal(USER .. ":" .. EXTRA .. " 660", st)
    H.stop(p)
  end)

  it("leaves no worker behind when the manager is SIGKILLed after the workers changed user", function()
    if not ROOT then return pending(NOT_ROOT) end
    local p = run_as_user(IDENTITY, { "T_CWD=/" })
    local pids = { tonumber(p:wait_event("^init (%d+) ")), tonumber(p:wait_event("^init (%d+) ", 5, 1)) }
    assert(p:kill("KILL"))
    assert.are.same({ signal = 9 }, p:wait(5))
    H.wait_until(function() return gone(pids[1]) and gone(pids[2]) end, 5, "the workers to exit")
  end)

  it("fails a worker whose user was removed meanwhile, before init, and throttles its restarts", function()
    if not ROOT then return pending(NOT_ROOT) end
    add_user(GONE)
    local p = run_as_user([[
local m = cotylua.manager()
m:add({ name = "web", user = os.getenv("T_GONE_USER"), restart = { burst = 1, delay = 0.2 },
  init = function() ev("init %d", cotylua.getpid()) end, run = function() cotylua.sleep(math.huge) end })
return m
]], { "T_GONE_USER=" .. GONE })
    local pid = tonumber(p:wait_event("^init (%d+)$"))
    remove_user(GONE)
    assert(proc.kill(pid, "KILL"))
    H.wait_until(function() return p:stderr():find("died 3 times", 1, true) end, 10, "the throttle")
    local err = p:stderr()
    assert.matches('cannot take the service\'s identity, init not run: user "' .. GONE
      .. '": no such entry; exiting with status 3', err)
    assert.matches("web worker%(0%) died 2 times in [%d.]+ s; next start in 0.2 s", err)
    assert.are.equal(1, p:count_events("^init "))
    H.stop(p)
  end)

  it("fails a worker whose limit the kernel refuses, before init, and throttles its restarts", function()
    local p = H.run_app([[
local m = cotylua.manager()
m:add({ name = "web", rlimits = { nofile = 1 << 40 }, restart = { burst = 1, delay = 0.2 },
  init = function() ev("init") end, run = function() cotylua.sleep(math.huge) end })
return m
]])
    H.wait_until(function() return p:stderr():find("died 3 times", 1, true) end, 10, "the throttle")
    local err = p:stderr()
    assert.matches("cannot take the service's identity, init not run: setrlimit%(nofile, soft "
      .. (1 << 40) .. ", hard " .. (1 << 40) .. "%): Operation not permitted", err)
    assert.matches("web worker%(0%) %[pid %d+%] exited with status 3", err)
    assert.matches("web worker%(0%) died 2 times in [%d.]+ s; next start in 0.2 s", err)
    assert.are.equal(0, p:count_events("^init"))
    H.stop(p)
  end)

  describe("checks, also under --check", function()
    local function check(body)
      local dir = H.tmpdir()
      local file = H.app(dir, H.prelude .. body)
      local p = H.start{ dir = dir, argv = { H.bin, "--check", file } }
      local st, why = p:wait(10)
      return st or why, p:stdout(), p:stderr(), file
    end

    local function refused(line, option, pattern)
      local body = "local m = cotylua.manager()\n" .. ("\n"):rep(line - #H.lines_of(H.prelude) - 2)
        .. "m:add({ run = function() end, " .. option .. " })\nreturn m\n"
      local st, _, err, file = check(body)
      assert.are.same({ code = 2 }, st)
      assert.matches(file:gsub("%p", "%%%0") .. ":" .. line .. ": " .. pattern, err)
    end

    it("refuses an unknown user or group, at the line of the services file", function()
      refused(12, 'user = "no-such-user-here"',
        'bad service "service1".user: user "no%-such%-user%-here" %(string%): no such user')
      refused(9, "group = 'no-such-group-here'",
        'bad service "service1".group: group "no%-such%-group%-here" %(string%): no such group')
      refused(10, 'listen = "unix:/tmp/x.sock", listen_owner = "root:no-such-group-here"',
        'bad service "service1".listen_owner: group "no%-such%-group%-here" %(string%): no such group')
    end)

    it("refuses a bad limit name or value, umask, nice, env or cwd, naming the field and the value", function()
      refused(8, "rlimits = { files = 10 }", 'bad service "service1".rlimits: unknown limit "files" %(string%); known: as, core, ')
      refused(8, "rlimits = { nofile = -1 }",
        'bad service "service1".rlimits.nofile: expected an integer >= 0 or "unlimited", got %-1 %(number%)')
      refused(8, "rlimits = { core = { soft = 10, hard = 5 } }",
        'bad service "service1".rlimits.core: soft limit 10 is above the hard limit 5')
      refused(8, 'umask = "0999"', 'bad service "service1".umask: expected permission bits')
      refused(8, "nice = 20", 'bad service "service1".nice: expected an integer from %-20 to 19, got 20 %(number%)')
      refused(8, "env = { ['A=B'] = 'x' }", 'bad service "service1".env key: expected a variable name')
      refused(8, 'cwd = "relative/dir"', 'bad service "service1".cwd: expected an absolute path, got "relative/dir" %(string%)')
      refused(8, 'listen_mode = "0660"',
        'bad listen_mode for service "service1": "0660" is for unix: addresses and listen has none')
    end)

    it("prints each service's identity and limits", function()
      local st, out = check([[
local m = cotylua.manager()
m:add({ name = "web", user = "root", umask = "0027", cwd = "/", nice = 5, no_new_privs = true,
  env = { A = "1", B = false }, rlimits = { nofile = { soft = 1024, hard = 4096 }, core = "unlimited" },
  run = function() end })
m:add({ name = "plain", run = function() end })
return m
]])
      assert.are.same({ code = 0 }, st)
      assert.matches("\n     as: user root %(uid 0%), group root %(gid 0%), groups 0[%d,]*, umask 0027, cwd /, nice 5, no_new_privs\n", out)
      assert.matches("\n     limits %(soft/hard%): core unlimited/unlimited, nofile 1024/4096\n", out)
      assert.matches("\n     env: set A, unset B\n", out) -- names only: values may be secrets
      assert.is_nil(out:find("A=1", 1, true))
      assert.matches("\n2 +plain .-\n     as: the manager's user and groups\n", out)
    end)
  end)
end)
