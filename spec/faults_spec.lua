-- Errors in services, graceful timeouts, signals that race start-up, and
-- the state a worker starts in.
local H = require("helpers")
local proc = H.proc

describe("faults", function()
  local p

  it("logs the traceback of an error in run, reports status 2 and respawns", function()
    p = H.run_app([[
local S = { name = "raiser" }
function S:run()
  ev("run %d", cotylua.getpid())
  error("boom from run")
end
local m = cotylua.manager()
m:add(S)
m:register_hooks({ on_dead_worker = function(s, w, code) ev("dead %d %d %d", s, w, code) end })
return m
]])
    local first = tonumber(p:wait_event("^run (%d+)$"))
    p:wait_event("^dead 1 0 2$")
    local second = tonumber(p:wait_event("^run (%d+)$", 5, p:index_of("^dead 1 0 2$")))
    assert.are_not.equal(first, second)
    local err = p:stderr()
    assert.matches("raiser worker%(0%)%[" .. first .. "%]: error in run: [^\n]*services.lua:%d+: boom from run", err)
    assert.matches("stack traceback:", err)
    p:kill("TERM")
    assert.are.same({ code = 0 }, p:wait(5))
  end)

  it("exits 2 for an error in init and in terminate", function()
    p = H.run_app([[
local Bad = { name = "badinit" }
function Bad:init() ev("init %d", cotylua.getpid()) error("init failed") end
local T = { name = "badterm" }
function T:run() ev("run %d", cotylua.getpid()) cotylua.sleep(60) end
function T:terminate() error("terminate failed") end
local m = cotylua.manager()
m:add(Bad)
m:add(T)
m:register_hooks({ on_dead_worker = function(s, w, code) ev("dead %d %d %d", s, w, code) end })
return m
]])
    p:wait_event("^dead 1 0 2$")
    local pid = tonumber(p:wait_event("^run (%d+)$"))
    assert(proc.kill(pid, "TERM"))
    p:wait_event("^dead 2 0 2$")
    assert.matches("error in init: [^\n]*init failed", p:stderr())
    assert.matches("error in terminate: [^\n]*terminate failed", p:stderr())
    p:kill("TERM")
    assert.are.same({ code = 0 }, p:wait(5))
  end)

  local SLOW_TERMINATE = [[
local S = { name = "slow", graceful_shutdown_timeout = 0.5 }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(60) end
function S:terminate()
  ev("term %d %.3f", cotylua.getpid(), cotylua.now())
  local x = 0
  while true do x = x + 1 end -- never returns
end
local m = cotylua.manager({ graceful_shutdown_timeout = MANAGER_TIMEOUT })
m:add(S, { workers = 2 })
return m
]]

  it("exits a worker with status 1 when terminate outlives its graceful_shutdown_timeout", function()
    p = H.run_app((SLOW_TERMINATE:gsub("MANAGER_TIMEOUT", "10")))
    local pid = tonumber(p:wait_event("^run (%d+)$"))
    H.wait_until(function() return p:count_events("^run ") == 2 end)
    local t0 = proc.now()
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(5))
    local elapsed = proc.now() - t0
    assert.is_true(elapsed >= 0.5 and elapsed < 2, "stopped after " .. elapsed .. " s")
    assert.matches("slow worker%(%d%)%[" .. pid .. "%]: graceful shutdown timeout exceeded", p:stderr())
    assert.matches("slow worker%(%d%) %[pid " .. pid .. "%] exited with status 1", p:stderr())
  end)

  it("stops at once with status 1 when the manager's own timeout passes", function()
    p = H.run_app((SLOW_TERMINATE:gsub("MANAGER_TIMEOUT", "0.3"):gsub("timeout = 0.5", "timeout = 0")))
    H.wait_until(function() return p:count_events("^run ") == 2 end)
    local t0 = proc.now()
    assert(p:kill("TERM"))
    assert.are.same({ code = 1 }, p:wait(5))
    local elapsed = proc.now() - t0
    assert.is_true(elapsed >= 0.3 and elapsed < 1.5, "stopped after " .. elapsed .. " s")
    assert.are.equal(2, p:count_events("^term "))
    assert.matches("graceful shutdown timeout %(0.3 s%) exceeded", p:stderr())
    assert.are.same({}, H.procs_in(p.dir))
  end)

  it("bounds terminate by the graceful timeout when the manager is SIGKILLed", function()
    p = H.run_app((SLOW_TERMINATE:gsub("MANAGER_TIMEOUT", "10")))
    H.wait_until(function() return p:count_events("^run ") == 2 end)
    assert(p:kill("KILL"))
    p:wait(5)
    H.wait_until(function() return p:count_events("^term ") == 2 end, 2, "terminate in both workers")
    H.wait_until(function() return #H.procs_in(p.dir) == 0 end, 2, "both workers to exit")
  end)

  it("bounds a terminate that SIGHUP started (a service without reload) by the timeout", function()
    p = H.run_app([[
local S = { name = "stuck", graceful_shutdown_timeout = 0.3 }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(1e9) end
function S:terminate() ev("term %d", cotylua.getpid()) while true do end end
local m = cotylua.manager()
m:add(S)
m:register_hooks({ on_dead_worker = function(s, w, code) ev("dead %d", code) end })
return m
]])
    local pid = tonumber(p:wait_event("^run (%d+)$"))
    assert(p:kill("HUP"))
    p:wait_event("^term " .. pid .. "$")
    p:wait_event("^dead 1$", 2)
    local newpid = tonumber(p:wait_event("^run (%d+)$", 2, 3))
    assert.are_not.equal(pid, newpid)
    p:kill("TERM")
    p:wait(5)
  end)

  it("delivers a SIGTERM at once while a busy reload runs", function()
    p = H.run_app([[
local S = { name = "busyreload" }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(1e9) end
function S:reload() ev("reload") local t = cotylua.now() while cotylua.now() - t < 10 do end end
function S:terminate() ev("term") end
local m = cotylua.manager()
m:add(S)
return m
]])
    local pid = tonumber(p:wait_event("^run (%d+)$"))
    assert(proc.kill(pid, "HUP"))
    p:wait_event("^reload$")
    local t0 = proc.now()
    assert(proc.kill(pid, "TERM"))
    p:wait_event("^term$", 2)
    -- the reload busy-loops for 10 s: terminate does not wait for it
    assert.is_true(proc.now() - t0 < 2, ("terminate came after %.3f s"):format(proc.now() - t0))
    p:kill("TERM")
    assert.are.same({ code = 0 }, p:wait(5))
  end)

  it("exits 2 when looking up a method raises (a strict service table)", function()
    p = H.run_app([[
local S = { name = "strict" }
function S:run()
  ev("run %d", cotylua.getpid())
  while true do pcall(cotylua.sleep, 60) end -- must not swallow the error
end
local m = cotylua.manager()
m:add(S)
-- strict about one field: looking up reload raises
setmetatable(S, { __index = function(_, k) if k == "reload" then error("no field " .. k) end end })
m:register_hooks({ on_dead_worker = function(s, w, code) ev("dead %d", code) end })
return m
]])
    local pid = tonumber(p:wait_event("^run (%d+)$"))
    assert(proc.kill(pid, "HUP"))
    p:wait_event("^dead 2$", 2)
    assert.matches("error in reload: [^\n]*no field reload", p:stderr())
    p:kill("TERM")
    p:wait(5)
  end)

  it("runs terminate, not a SIGPIPE death, when the manager dies during init", function()
    p = H.run_app([[
local S = { name = "orphan" }
function S:init()
  ev("init start %d", cotylua.getpid())
  local t = cotylua.now()
  while cotylua.now() - t < 0.5 do cotylua.sleep(0.05) end
  ev("init done")
end
function S:terminate() ev("term") end
local m = cotylua.manager()
m:add(S)
return m
]])
    p:wait_event("^init start %d+$")
    assert(p:kill("KILL"))
    p:wait(5)
    p:wait_event("^init done$", 2)
    p:wait_event("^term$", 2)
    H.wait_until(function() return #H.procs_in(p.dir) == 0 end, 2, "the worker to exit")
  end)

  it("supervises when started with SIGCHLD ignored", function()
    local dir = H.tmpdir()
    H.app(dir, H.prelude .. [[
local S = { name = "kid", restart = { interval = 0 } }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(1e9) end
local m = cotylua.manager()
m:add(S)
m:register_hooks({ on_dead_worker = function(s, w, code) ev("dead %d", code) end })
return m
]])
    p = H.start{ dir = dir, argv = { "sh", "-c", "trap '' CHLD; exec " .. H.bin .. " services.lua" } }
    local pid = tonumber(p:wait_event("^run (%d+)$"))
    -- the ignored SIGCHLD came through exec; the manager reset it
    assert.are.equal(0, tonumber(H.proc_status(p.pid).SigIgn, 16) & (1 << (17 - 1)))
    assert(proc.kill(pid, "KILL"))
    p:wait_event("^dead %-9$", 2)
    H.wait_until(function() return p:count_events("^run ") == 2 end, 2, "the respawn")
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(5))
  end)

  it("delivers a SIGTERM that arrives during init once init returns, and skips run", function()
    p = H.run_app([[
local S = { name = "starting" }
function S:init()
  ev("init start %d", cotylua.getpid())
  local f = io.open(os.getenv("EVENTS") .. ".go", "r")
  local seen = false
  while not f do
    if cotylua.stopping() and not seen then seen = true ev("stop seen %d", cotylua.getpid()) end
    cotylua.sleep(0.01)
    f = io.open(os.getenv("EVENTS") .. ".go", "r")
  end
  f:close()
  ev("init done %d", cotylua.getpid())
end
function S:run() ev("run %d", cotylua.getpid()) end
function S:terminate() ev("term %d", cotylua.getpid()) end
local m = cotylua.manager()
m:add(S, { workers = 3 })
m:register_hooks({ on_terminate = function() ev("hook_terminate") end })
return m
]])
    H.wait_until(function() return p:count_events("^init start ") == 3 end)
    assert(p:kill("TERM"))
    p:wait_event("^hook_terminate$")
    -- init goes on only once every worker has its SIGTERM
    H.wait_until(function() return p:count_events("^stop seen ") == 3 end, 10, "3 SIGTERMs in init")
    H.write(H.events_file(p.dir) .. ".go", "")
    assert.are.same({ code = 0 }, p:wait(5))
    assert.are.equal(3, p:count_events("^init done "))
    assert.are.equal(3, p:count_events("^term "))
    assert.are.equal(0, p:count_events("^run "))
  end)

  it("lets an on_dead_worker hook shut the manager down", function()
    p = H.run_app([[
local S = { name = "dies" }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(0.1) os.exit(3) end
local Other = { name = "other" }
function Other:run() cotylua.sleep(60) end
function Other:terminate() ev("term other") end
local m = cotylua.manager()
m:add(S)
m:add(Other)
m:register_hooks({
  on_dead_worker = function(s, w, code) ev("dead %d %d %d", s, w, code) m:shutdown() m:shutdown() end,
  on_terminate = function() ev("hook_terminate") end,
})
return m
]])
    assert.are.same({ code = 0 }, p:wait(5))
    assert.are.equal(1, p:count_events("^dead 1 0 3$"))
    assert.are.equal(1, p:count_events("^run "), "the dead worker was not respawned")
    assert.are.equal(1, p:count_events("^hook_terminate$"))
    assert.are.equal(1, p:count_events("^term other$"))
  end)

  it("starts workers with a clean signal mask, no ignored signals and only stdio open", function()
    p = H.run_app([[
local S = { name = "clean" }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(60) end
local m = cotylua.manager()
m:add(S)
return m
]])
    local pid = tonumber(p:wait_event("^run (%d+)$"))
    local st = H.proc_status(pid)
    assert.are.equal("0000000000000000", st.SigBlk)
    assert.are.equal("0000000000000000", st.SigIgn)
    assert.are.same({ 0, 1, 2 }, H.fds(pid))
    assert.are.equal(tostring(p.pid), st.PPid)
    -- the manager itself keeps its signals in a signalfd, and every fd it
    -- opened is close-on-exec
    local mst = H.proc_status(p.pid)
    assert.are_not.equal("0000000000000000", mst.SigBlk)
    local own = 0
    for _, fd in ipairs(H.fds(p.pid)) do
      if fd > 2 then
        local flags = H.read(("/proc/%d/fdinfo/%d"):format(p.pid, fd)):match("flags:%s+(%d+)")
        assert.are.equal(1, math.floor(tonumber(flags, 8) / tonumber("2000000", 8)) % 2, "fd " .. fd .. " lacks O_CLOEXEC")
        own = own + 1
      end
    end
    assert.are.equal(4, own) -- signalfd, epoll, the readiness pipe
    p:kill("TERM")
    assert.are.same({ code = 0 }, p:wait(5))
  end)

  it("keeps SIGPIPE ignored in workers when the services file ignored it (luasocket does)", function()
    p = H.run_app([[
require("socket") -- sets SIGPIPE to SIG_IGN in the manager, as network libraries do
local S = { name = "net" }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(60) end
local m = cotylua.manager()
m:add(S)
return m
]])
    local pid = tonumber(p:wait_event("^run (%d+)$"))
    assert.are.equal(string.format("%016x", 1 << (13 - 1)), H.proc_status(pid).SigIgn)
    p:kill("TERM")
    assert.are.same({ code = 0 }, p:wait(5))
  end)

  it("does not hand NOTIFY_SOCKET to workers", function()
    p = H.run_app([[
local S = { name = "env" }
function S:run() ev("env %s", tostring(os.getenv("NOTIFY_SOCKET"))) end
local m = cotylua.manager()
m:add(S)
return m
]], "binary", { env = { "NOTIFY_SOCKET=/nonexistent/notify" } })
    assert.are.equal("nil", p:wait_event("^env (.*)$"))
    p:kill("TERM")
    assert.are.same({ code = 0 }, p:wait(5))
  end)
end)
