-- The `watchdog` service option: a worker that shows no sign of life for
-- that long (cotylua.heartbeat, cotylua.sleep, cotylua.wait) is logged as
-- hung, shown as such, stopped and replaced; one that waits or beats is
-- left alone.
local H = require("helpers")
local proc = H.proc

local WATCHDOG, GRACEFUL = 1, 2

-- stuck: worker(0)'s first run blocks in a C call, open(2) of a FIFO that
-- nobody writes to, and again in terminate, so that the stop runs out its
-- graceful timeout.
local STUCK = [[
local S = { name = "stuck", watchdog = %g, graceful_shutdown_timeout = %g }
function S:run()
  ev("run %%d %%d", self.worker_id, cotylua.getpid())
  if self.worker_id == 0 and os.remove("stuck") then
    ev("stuck")
    io.open("fifo", "r")
  end
  while true do cotylua.sleep(0.2) end
end
function S:terminate()
  ev("term %%d", self.worker_id)
  if self.worker_id == 0 then io.open("fifo", "r") end
end
local m = cotylua.manager()
m:add(S, { workers = 2 })
return m
]]

local function ctl_status(p)
  local c = H.start{ argv = { H.bin, "ctl", p.dir .. "/services.lua", "status" },
                     env = { RUNTIME_DIRECTORY = p.dir } }
  assert.are.same({ code = 0 }, c:wait(20))
  return c:stdout()
end

describe("the watchdog", function()
  local fd
  after_each(function()
    if fd then proc.close(fd) end
    fd = nil
  end)

  it("replaces a worker stuck in a C read within watchdog + graceful timeout", function()
    local dir = H.tmpdir()
    os.execute("mkfifo " .. dir .. "/fifo")
    H.write(dir .. "/stuck", "")
    local path = dir .. "/notify.sock"
    fd = assert(proc.dgram_socket(path))
    local p = H.run_app(STUCK:format(WATCHDOG, GRACEFUL), "binary",
      { dir = dir, env = { "NOTIFY_SOCKET=" .. path, "WATCHDOG_USEC=400000" } })
    p:wait_event("^stuck$", 10)
    local t_stuck = proc.now()
    local old = tonumber(p:wait_event("^run 0 (%d+)$", 10))
    -- logged as hung, asked to stop, and shown as hung while it stops
    H.wait_until(function() return p:stderr():find("is hung") end, 10, "the hung worker's log line")
    local t_hung = proc.now()
    assert.matches("stuck worker%(0%) %[pid " .. old .. "%] is hung: no sign of life for %d", p:stderr())
    assert.matches("worker%(0%)  pid " .. old .. " +hung", ctl_status(p))
    local deadline = proc.now() + 10
    local status
    repeat
      status = proc.recv(fd, deadline - proc.now())
    until not status or status:find("hung:")
    assert.are.equal("STATUS=2/2 workers: stuck 2/2; hung: stuck worker(0) [pid " .. old .. "]", status)
    -- replaced: a new worker(0) runs
    local new = tonumber(p:wait_event("^run 0 (%d+)$", 20, p:index_of("^stuck$")))
    local t_new = proc.now()
    assert.are_not.equal(old, new)
    assert.is_true(t_hung - t_stuck >= WATCHDOG * 0.9, "not hung before its watchdog")
    -- the graceful timeout bounds the stop; the rest is for the scan and the load
    assert.is_true(t_new - t_stuck < WATCHDOG + GRACEFUL + 2 * H.slow,
      ("replaced %.2f s after it got stuck"):format(t_new - t_stuck))
    assert.matches("stuck worker%(0%) %[pid " .. old .. "%] exited with status 1", p:stderr())
    assert.matches("worker%(0%)  pid " .. new .. " .* last exit status 1 %(hung%)", ctl_status(p))
    -- meanwhile the manager, alive, went on telling systemd's watchdog so
    local pings = 0
    repeat
      local msg = proc.recv(fd, 0.01)
      if msg == "WATCHDOG=1" then pings = pings + 1 end
    until not msg
    assert.is_true(pings >= 3, pings .. " WATCHDOG=1 while the worker was hung")
    local metrics = H.start{ argv = { H.bin, "ctl", dir .. "/services.lua", "metrics" },
                             env = { RUNTIME_DIRECTORY = dir } }
    assert.are.same({ code = 0 }, metrics:wait(20))
    assert.matches('cotylua_worker_hangs_total{service="stuck"} 1', metrics:stdout())
    -- worker(1), which kept waiting in cotylua.sleep, was never touched
    assert.are.equal(1, p:count_events("^run 1 "))
    -- nobody reads the notify socket from now on: closed, so that its
    -- queue does not fill up with pings
    proc.close(fd)
    fd = nil
    H.stop(p)
  end)

  it("leaves alone workers that sleep longer than the watchdog or beat while busy", function()
    local p = H.run_app([[
local S = { name = "calm", watchdog = 0.5 }
function S:run()
  if self.worker_id == 0 then
    cotylua.sleep(2) -- four watchdogs in one sleep
  else
    local t = cotylua.now()
    while cotylua.now() - t < 2 do cotylua.heartbeat() end -- busy, beating
  end
  ev("done %d", self.worker_id)
  while true do cotylua.sleep(1) end
end
local m = cotylua.manager()
m:add(S, { workers = 2 })
return m
]])
    p:wait_event("^done 0$", 10)
    p:wait_event("^done 1$", 10)
    assert.falsy(p:stderr():find("hung"), p:stderr())
    assert.are.equal(2, select(2, H.workers_of(p.pid, "calm")))
    H.stop(p)
  end)

  for _, case in ipairs({
    { "cqueues", [[
local cqueues = require("cqueues")
function S:init() self.cq = require("cotylua.loop").cqueues(cqueues.new()) end
function S:run()
  self.cq:wrap(function() cqueues.sleep(2) ev("done %d", self.worker_id) end)
  assert(self.cq:loop())
  while true do cotylua.sleep(1) end
end
]] },
    { "luv", [[
local uv = require("luv")
function S:init() require("cotylua.loop").luv(uv) end
function S:run()
  uv.new_timer():start(2000, 0, function() ev("done %d", self.worker_id) end)
  uv.run()
  while true do cotylua.sleep(1) end
end
]] },
  }) do
    it("takes the heartbeats of a worker idle in a " .. case[1] .. " loop", function()
      local p = H.run_app("local S = { name = 'looped', watchdog = 0.5 }\n" .. case[2] .. [[
local m = cotylua.manager()
m:add(S)
return m
]])
      p:wait_event("^done 0$", 10)
      assert.falsy(p:stderr():find("hung"), p:stderr())
      H.stop(p)
    end)
  end

  it("is refused when it is not a number of seconds", function()
    local dir = H.tmpdir()
    H.app(dir, H.prelude .. "local m = cotylua.manager()\nm:add({ name = 'x', watchdog = 'soon' })\nreturn m\n")
    local p = H.start{ dir = dir, args = {}, file = dir .. "/services.lua" }
    assert.are.same({ code = 2 }, p:wait(10))
    assert.matches("watchdog", p:stderr())
  end)
end)
