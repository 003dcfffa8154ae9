-- sd_notify on a real AF_UNIX datagram socket given as NOTIFY_SOCKET: the
-- whole message sequence, the watchdog rate, and workers that never see it.
local H = require("helpers")
local proc = H.proc

-- Waits for the first datagram matching pattern; returns it and those before.
local function expect(fd, pattern, timeout, seen)
  seen = seen or {}
  local deadline = proc.now() + (timeout or 5)
  while proc.now() < deadline do
    local msg = proc.recv(fd, deadline - proc.now())
    if msg then
      seen[#seen + 1] = msg
      if msg:find(pattern) then return msg, seen end
    end
  end
  error(("no notification matching %q; got:\n%s"):format(pattern, table.concat(seen, "\n---\n")), 2)
end

local APP = [[
local S = { name = "slow" }
function S:init()
  cotylua.sleep(0.2 + 0.1 * self.worker_id)
  ev("init done %d %s", self.worker_id, tostring(os.getenv("NOTIFY_SOCKET")))
end
function S:run() cotylua.sleep(1e9) end
function S:reload() ev("reload %d", self.worker_id) end
local Plain = { name = "plain" }
function Plain:init()
  ev("plain init %s %s", tostring(os.getenv("WATCHDOG_USEC")), tostring(os.getenv("WATCHDOG_PID")))
end
local m = cotylua.manager()
m:add(S, { workers = 3 })
m:add(Plain)
return m
]]

describe("sd_notify", function()
  local p, fd

  after_each(function()
    if fd then proc.close(fd) end
    p, fd = nil, nil
  end)

  local function start(env)
    local dir = H.tmpdir()
    local path = dir .. "/notify.sock"
    fd = assert(proc.dgram_socket(path))
    local e = { "NOTIFY_SOCKET=" .. path }
    for _, kv in ipairs(env or {}) do e[#e + 1] = kv end
    p = H.run_app(APP, "binary", { dir = dir, env = e })
  end

  it("sends READY only once every worker finished init, then RELOADING/READY and STOPPING", function()
    start()
    local ready, before = expect(fd, "READY=1")
    -- every init finished before READY=1 came
    assert.are.equal(3, p:count_events("^init done "))
    assert.are.equal(1, p:count_events("^plain init "))
    assert.matches("MAINPID=" .. p.pid, ready)
    for i = 1, #before - 1 do
      assert.matches("^STATUS=", before[i])
    end
    assert.are.equal("STATUS=4/4 workers: slow 3/3, plain 1/1", before[#before - 1])
    -- the workers never saw NOTIFY_SOCKET
    assert.are.equal(3, p:count_events("^init done %d nil$"))

    assert(p:kill("HUP"))
    local reloading = expect(fd, "RELOADING=1")
    assert.matches("MONOTONIC_USEC=%d+", reloading)
    -- plain has no reload(): READY=1 only once it has restarted
    local again = expect(fd, "^READY=1$")
    assert.are.equal(2, p:count_events("^plain init "))
    assert.is_nil(again:find("MAINPID", 1, true))

    assert(p:kill("TERM"))
    local stopping, seen = expect(fd, "STOPPING=1")
    assert.truthy(stopping)
    local extend = expect(fd, "EXTEND_TIMEOUT_USEC=(%d+)", 5, seen)
    local usec = tonumber(extend:match("EXTEND_TIMEOUT_USEC=(%d+)"))
    assert.is_true(usec > 59e6 and usec <= 62e6, "EXTEND_TIMEOUT_USEC=" .. usec)
    assert.are.same({ code = 0 }, p:wait(10))
  end)

  it("pings the watchdog at half of WATCHDOG_USEC, from the manager only", function()
    start({ "WATCHDOG_USEC=200000" }) -- no WATCHDOG_PID: for any pid
    expect(fd, "READY=1")
    local t0 = proc.now()
    local pings = 0
    while proc.now() - t0 < 1 do
      local msg = proc.recv(fd, 0.3)
      if msg == "WATCHDOG=1" then pings = pings + 1 end
    end
    assert.is_true(pings >= 8 and pings <= 12, pings .. " pings in 1 s")
    assert.are.equal(1, p:count_events("^plain init nil nil$"))
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
  end)

  it("names throttled slots in STATUS", function()
    local dir = H.tmpdir()
    local path = dir .. "/notify.sock"
    fd = assert(proc.dgram_socket(path))
    p = H.run_app([[
local S = { name = "crasher", restart = { burst = 0, delay = 30, max_delay = 30 } }
function S:run() os.exit(1) end
local m = cotylua.manager()
m:add(S)
m:add({ name = "fine" })
return m
]], "binary", { dir = dir, env = { "NOTIFY_SOCKET=" .. path } })
    local status = expect(fd, "throttled")
    assert.are.equal("STATUS=1/2 workers: crasher 0/1, fine 1/1; throttled: crasher worker(0)", status)
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
  end)

  local function start_app(body, env)
    local dir = H.tmpdir()
    local path = dir .. "/notify.sock"
    fd = assert(proc.dgram_socket(path))
    local e = { "NOTIFY_SOCKET=" .. path }
    for _, kv in ipairs(env or {}) do e[#e + 1] = kv end
    p = H.run_app(body, "binary", { dir = dir, env = e })
  end

  it("sends READY when the slots that never got ready are removed by reconfigure", function()
    start_app([[
local S = { name = "shrink" }
function S:init() if self.worker_id == 1 then error("worker 1 cannot start") end end
local m = cotylua.manager()
local id = m:add(S, { workers = 2 })
m:register_hooks({ on_dead_worker = function(s, w) if w == 1 then m:reconfigure(id, 1) end end })
return m
]])
    local ready = expect(fd, "READY=1")
    assert.matches("MAINPID=", ready)
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
  end)

  it("sends READY for a manager without services", function()
    start_app("return cotylua.manager()\n")
    expect(fd, "READY=1")
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
  end)

  it("waits for a worker restarted by a SIGHUP that came during its init", function()
    start_app([[
local S = { name = "slowinit" }
function S:init()
  ev("init start %d", cotylua.getpid())
  local t = cotylua.now()
  while cotylua.now() - t < 0.4 do cotylua.sleep(0.05) end
  ev("init done %d", cotylua.getpid())
end
local m = cotylua.manager()
m:add(S)
return m
]])
    p:wait_event("^init start %d+$")
    assert(p:kill("HUP"))
    expect(fd, "READY=1")
    -- the first worker stopped to be restarted (no reload()); READY waited
    -- for the second one's init
    assert.are.equal(2, p:count_events("^init done "))
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
  end)

  it("sends STOPPING on SIGINT too", function()
    start_app([[
local m = cotylua.manager()
m:add({ name = "x" })
return m
]])
    expect(fd, "READY=1")
    assert(p:kill("INT"))
    expect(fd, "STOPPING=1")
    assert.are.same({ code = 1 }, p:wait(10))
  end)

  it("is silent and makes no wake-up without NOTIFY_SOCKET", function()
    p = H.run_app(APP)
    H.wait_until(function() return p:count_events("^init done ") == 3 end)
    -- the workers report ready after their event: the manager logs when
    -- it has every report, and only then is it idle
    H.wait_until(function() return p:stderr():find("ready: 4 workers", 1, true) end)
    H.wait_until(function() return H.proc_stat(p.pid).state == "S" end)
    local st0 = H.proc_status(p.pid)
    local deadline = proc.now() + 0.5
    H.wait_until(function() return proc.now() >= deadline end)
    local st1 = H.proc_status(p.pid)
    assert.are.equal(st0.voluntary_ctxt_switches, st1.voluntary_ctxt_switches)
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
  end)
end)
