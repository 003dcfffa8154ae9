-- Delivery at the edges: a service's own debug hook, coroutines nested
-- deep, timeouts huge or tiny, a reload during a blocking read, and the
-- coroutine.wrap replacement's errors.
local H = require("helpers")
local proc = H.proc

-- A services file: one service "s" with the given methods (Lua source),
-- graceful timeout `timeout` (default 10).
local function app(methods, timeout)
  return ([[
local S = { name = "s", graceful_shutdown_timeout = %s }
function S:init() self.fifo = os.getenv("FIFO") end
%s
function S:terminate() ev("term %%d", cotylua.getpid()) end
local m = cotylua.manager()
m:add(S)
return m
]]):format(tostring(timeout or 10), methods)
end

describe("delivery at the edges", function()
  local p

  local function start(methods, timeout)
    local dir = H.tmpdir()
    local fifo = dir .. "/fifo"
    assert(os.execute("mkfifo " .. fifo))
    p = H.run_app(app(methods, timeout), "binary", { dir = dir, env = { "FIFO=" .. fifo } })
    return fifo
  end

  local function sleeping(pid)
    H.wait_until(function()
      local st = H.proc_stat(pid)
      return st and st.state == "S"
    end, 3, "pid " .. pid .. " to sleep in the kernel")
  end

  local function stop_gracefully()
    p:kill("TERM")
    assert.are.equal(0, p:wait(10).code)
  end

  it("gives the service's own debug hook back after a delivery", function()
    start([[
function S:run()
  local function counter() end
  debug.sethook(counter, "", 1000)
  ev("run %d", cotylua.getpid())
  local x = 0
  while true do
    x = x + 1
    if self.reloaded and x % 100000 == 0 then
      self.reloaded = false
      local h, mask, count = debug.gethook()
      ev("hook same=%s mask=[%s] count=%d", tostring(h == counter), mask, count)
    end
  end
end
function S:reload() ev("reload") self.reloaded = true end]])
    local pid = tonumber(p:wait_event("^run (%d+)$"))
    proc.kill(pid, "HUP")
    p:wait_event("^reload$", 2)
    assert.are.equal("hook same=true mask=[] count=1000", p:wait_event("^hook .*$", 2))
    stop_gracefully()
  end)

  it("delivers reload and terminate to a busy loop 70 coroutines deep", function()
    start([[
function S:run()
  local function nest(n)
    if n == 0 then
      ev("deep %d", cotylua.getpid())
      local x = 0
      while true do x = x + 1 end
    end
    local co = coroutine.create(function() nest(n - 1) end)
    assert(coroutine.resume(co))
  end
  nest(70)
end
function S:reload() ev("reload") end]])
    local pid = tonumber(p:wait_event("^deep (%d+)$"))
    proc.kill(pid, "HUP")
    p:wait_event("^reload$", 1)
    proc.kill(pid, "TERM")
    p:wait_event("^term " .. pid .. "$", 1)
    stop_gracefully()
  end)

  -- Each call must wait (no return, no error) until a signal comes.
  local WAITS = {
    ["cotylua.sleep(1e19)"] = "cotylua.sleep(1e19)",
    ["cotylua.sleep(math.huge)"] = "cotylua.sleep(math.huge)",
    ["cotylua.wait(fd, 'r', 1e19)"] = [[
  local f = assert(io.open(self.fifo, "r+")) -- fd 3: a worker has only 0-2 of its own
  ev("waited %s", tostring(cotylua.wait(3, "r", 1e19)))]],
    ["a loop of cotylua.sleep(1e300)"] = [[
  while true do cotylua.sleep(1e300) ev("woke") end]],
  }
  for what, call in pairs(WAITS) do
    it("waits in " .. what .. " until a signal", function()
      start(([[
function S:run()
  ev("run %%d", cotylua.getpid())
  %s
  ev("returned")
end]]):format(call))
      local pid = tonumber(p:wait_event("^run (%d+)$"))
      sleeping(pid)
      proc.kill(pid, "TERM")
      p:wait_event("^term " .. pid .. "$", 2)
      for _, line in ipairs(p:events()) do
        assert.is_nil(line:find("^returned") or line:find("^waited") or line:find("^woke"), line)
      end
      stop_gracefully()
    end)
  end

  it("arms the graceful timeout of 1e-10 s: the smallest real delay", function()
    start([[
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(60) end
function S:terminate() ev("terminating") while true do end end]], "1e-10")
    local pid = tonumber(p:wait_event("^run (%d+)$"))
    proc.kill(pid, "TERM")
    H.wait_until(function()
      return p:stderr():find("graceful shutdown timeout exceeded", 1, true)
    end, 3, "the worker's own timeout")
    p:kill("INT")
    p:wait(5)
  end)

  it("a reload during a blocking io.lines() read is no error", function()
    local fifo = start([[
function S:run()
  local f = assert(io.open(self.fifo, "r+")) -- O_RDWR: no EOF
  ev("reading %d", cotylua.getpid())
  for line in f:lines() do ev("line %s", line) end
end
function S:reload() ev("reload") end]])
    local pid = tonumber(p:wait_event("^reading (%d+)$"))
    sleeping(pid)
    proc.kill(pid, "HUP")
    local w = assert(io.open(fifo, "w"))
    w:write("hello\n")
    w:close()
    p:wait_event("^line hello$", 2)
    p:wait_event("^reload$", 2)
    assert.are.equal(1, p:count_events("^reading"))
    assert.is_nil(p:stderr():find("Interrupted", 1, true))
    stop_gracefully()
  end)

  it("coroutine.wrap gives the original's errors", function()
    start([[
local co
co = coroutine.wrap(function() local r = co() return r end)
ev("self %s", select(2, pcall(co)))
local done = coroutine.wrap(function() end)
done()
ev("dead %s", select(2, pcall(done)))
local tail
tail = coroutine.wrap(function() return tail() end)
ev("tail %s", select(2, pcall(tail)))
local boom = coroutine.wrap(function() error("boom") end)
ev("boom %s", select(2, pcall(boom)))
function S:run() ev("run") end]])
    p:wait_event("^run$")
    assert.truthy(p:wait_event("^self .*$"):find("^self .-services%.lua:%d+: cannot resume non%-suspended coroutine$"))
    assert.are.equal("dead cannot resume dead coroutine", p:wait_event("^dead .*$"))
    assert.truthy(p:wait_event("^tail .*$"):find("^tail .-services%.lua:%d+: cannot resume non%-suspended coroutine$"))
    assert.truthy(p:wait_event("^boom .*$"):find("^boom .-services%.lua:%d+: boom$"))
    stop_gracefully()
  end)
end)
