-- Drain (a service with drain_on_stop = true: terminate starts the stop, the
-- worker exits when run returns, or with status 1 when its graceful
-- timeout passes) and delivery through a loop (cotylua.signal_fd and
-- cotylua.dispatch: terminate and reload run where the loop calls
-- dispatch, never inside the code that runs between).
local H = require("helpers")
local proc = H.proc

describe("drain and loop delivery", function()
  local p

  local function ready(n)
    H.wait_until(function() return p:stderr():find("ready: " .. n .. " worker", 1, true) end, 10,
      "workers ready")
  end

  it("ends a draining worker when run returns: cotylua.sleep returns at once", function()
    p = H.run_app([[
local S = { name = "d", drain_on_stop = true, graceful_shutdown_timeout = 30 }
function S:terminate() ev("terminate") end
function S:run()
  while not cotylua.stopping() do cotylua.sleep(60) end
  ev("run returns")
end
local m = cotylua.manager()
m:add(S, { workers = 1 })
return m
]])
    ready(1)
    local t0 = proc.now()
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
    assert(proc.now() - t0 < 2, "the stop took " .. (proc.now() - t0) .. " s")
    assert.are.same({ "terminate", "run returns" }, p:events())
    assert.matches("d worker%(0%) %[pid %d+%] exited\n", p:stderr())
  end)

  it("exits 1 when run does not return within the graceful timeout", function()
    p = H.run_app([[
local S = { name = "d", drain_on_stop = true, graceful_shutdown_timeout = 0.5 }
function S:terminate() ev("terminate") end
function S:run()
  while true do cotylua.sleep(1) end
end
local m = cotylua.manager()
m:add(S, { workers = 1 })
return m
]])
    ready(1)
    local t0 = proc.now()
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
    local took = proc.now() - t0
    assert(took >= 0.4 and took < 5, "the stop took " .. took .. " s")
    assert.matches("graceful shutdown timeout exceeded", p:stderr())
    assert.matches("exited with status 1", p:stderr())
  end)

  it("restarts a draining worker on SIGHUP (no reload) once run returns", function()
    p = H.run_app([[
local S = { name = "d", drain_on_stop = true }
function S:terminate() ev("terminate %d", cotylua.getpid()) end
function S:run()
  ev("run %d", cotylua.getpid())
  while not cotylua.stopping() do cotylua.sleep(60) end
  ev("run returns %d", cotylua.getpid())
end
local m = cotylua.manager()
m:add(S, { workers = 1 })
return m
]])
    local first = tonumber(p:wait_event("^run (%d+)$", 10))
    assert(p:kill("HUP"))
    p:wait_event("^run returns " .. first .. "$", 10)
    local second = tonumber(p:wait_event("^run (%d+)$", 10, 2))
    assert.are_not.equal(first, second)
    assert.are.same({ "run " .. first, "terminate " .. first, "run returns " .. first, "run " .. second },
      p:events())
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
  end)

  it("runs terminate where the loop dispatches, not inside the busy code", function()
    p = H.run_app([[
local S = { name = "l" }
function S:init() self.fd = cotylua.signal_fd() end
function S:terminate() ev("terminate") end
function S:run()
  ev("running")
  while true do
    local t = cotylua.now()
    ev("busy")
    while cotylua.now() - t < 0.3 do end  -- Lua code between two turns
    ev("idle")
    if cotylua.wait(self.fd, "r", 0.05) then cotylua.dispatch() end
  end
end
local m = cotylua.manager()
m:add(S, { workers = 1 })
return m
]])
    p:wait_event("^running$", 10)
    p:wait_event("^busy$", 5)
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
    local events = p:events()
    assert.are.equal("terminate", events[#events])
    assert.are.equal("idle", events[#events - 1]) -- after the busy turn, never inside it
  end)

  it("does not start run after a SIGTERM that came during init", function()
    p = H.run_app([[
local S = { name = "d", drain_on_stop = true }
function S:init()
  ev("init %d", cotylua.getpid())
  while not cotylua.stopping() do cotylua.sleep(0.01) end
end
function S:terminate() ev("terminate") end
function S:run() ev("run") end
local m = cotylua.manager()
m:add(S, { workers = 1 })
return m
]])
    local pid = tonumber(p:wait_event("^init (%d+)$", 10))
    assert(proc.kill(pid, "TERM"))
    p:wait_event("^terminate$", 10)
    H.wait_until(function() return not proc.alive(pid) or H.proc_stat(pid).state == "Z" end, 10, "the worker to exit")
    assert.is_nil(p:index_of("^run$"))
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
    assert.is_nil(p:index_of("^run$"))
  end)

  it("refuses signal_fd outside a worker", function()
    p = H.run_app([[
local ok, err = pcall(cotylua.signal_fd)
ev("%s %s", tostring(ok), tostring(err))
local m = cotylua.manager()
m:add({ name = "x" }, { workers = 1 })
return m
]])
    p:wait_event("^false", 10)
    assert.matches("only a worker has one", p:events()[1])
    ready(1)
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
  end)

  it("rejects a drain_on_stop that is not a boolean, naming it", function()
    p = H.run_app([[
local m = cotylua.manager()
m:add({ name = "x", drain_on_stop = "yes" }, { workers = 1 })
return m
]])
    assert.are_not.same({ code = 0 }, p:wait(10))
    assert.matches('bad service "x".drain_on_stop: expected true or false, got "yes" %(string%)', p:stderr())
  end)
end)
