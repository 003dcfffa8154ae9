-- Supervision under faults: deaths of every kind, signal storms, signals
-- racing the lifecycle, a hundred orphans-to-be, workers that hide from
-- their manager, fork failures and fd exhaustion.
local H = require("helpers")
local proc = H.proc

describe("supervision", function()
  local p

  it("reports each kind of death with its code and respawns the same worker id", function()
    p = H.run_app([[
local S = { name = "mortal", restart = { interval = 0 } }
function S:run()
  ev("run %d %d", self.worker_id, cotylua.getpid())
  local file = os.getenv("EVENTS") .. ".exit" .. self.worker_id
  local how = io.open(file)
  if how then local n = tonumber(how:read("l")) how:close() os.remove(file) os.exit(n) end
  cotylua.sleep(1e9)
end
local m = cotylua.manager()
m:add(S, { workers = 2 })
m:register_hooks({ on_dead_worker = function(s, w, code) ev("dead %d %d", w, code) end })
return m
]])
    H.wait_until(function() return select(2, H.workers_of(p.pid, "mortal")) == 2 end)
    for _, sig in ipairs({ "SEGV", "ABRT", "KILL", "TERM" }) do
      local pid = H.workers_of(p.pid, "mortal")[1]
      local n = #p:events()
      assert(proc.kill(pid, sig))
      local code = sig == "TERM" and 0 or -proc.signum(sig)
      assert.are.equal(tostring(code), p:wait_event("^dead 1 (%-?%d+)$", 5, n))
      local newpid = tonumber(p:wait_event("^run 1 (%d+)$", 5, n))
      assert.are_not.equal(pid, newpid)
    end
    -- os.exit(n) at the next start
    H.write(H.events_file(p.dir) .. ".exit0", "37\n")
    local n = #p:events()
    assert(proc.kill(H.workers_of(p.pid, "mortal")[0], "KILL"))
    p:wait_event("^dead 0 37$", 5, n)
    H.wait_until(function() return select(2, H.workers_of(p.pid, "mortal")) == 2 end)
    assert.are.equal(0, H.zombies_of(p.pid))
    H.stop(p)
  end)

  it("survives a storm of SIGHUPs and worker kills with exactly its workers and one hook per death", function()
    p = H.run_app([[
local S = { name = "storm", restart = { interval = 0 } }
function S:run() ev("run %d %d", self.worker_id, cotylua.getpid()) cotylua.sleep(1e9) end
function S:reload() end
local m = cotylua.manager()
m:add(S, { workers = 4 })
local reloads = 0
m:register_hooks({
  on_dead_worker = function(s, w, code) ev("dead %d %d", w, code) end,
  on_reload = function() reloads = reloads + 1 end,
  on_terminate = function() ev("reloads %d", reloads) end,
})
return m
]])
    H.wait_until(function() return p:count_events("^run ") == 4 end)
    -- the kernel's list of the manager's children: cheaper than a /proc scan
    local function kids()
      local out = {}
      for pid in H.read(("/proc/%d/task/%d/children"):format(p.pid, p.pid)):gmatch("%d+") do
        out[#out + 1] = tonumber(pid)
      end
      return out
    end
    local t0, hups, kills, killed = proc.now(), 0, 0, {}
    while (hups < 3000 or kills < 100) and proc.now() - t0 < 30 do
      for _ = 1, 30 do
        if proc.kill(p.pid, "HUP") then hups = hups + 1 end
      end
      for _, pid in ipairs(kids()) do -- each worker is killed once
        if not killed[pid] and proc.kill(pid, "KILL") then
          killed[pid] = true
          kills = kills + 1
          break
        end
      end
    end
    -- Each kill needs a respawned worker: 100 of them within 30 s (well
    -- under a second unloaded) while the SIGHUPs keep coming.
    local took = proc.now() - t0
    assert.is_true(hups >= 3000 and kills >= 100,
      ("sent %d SIGHUPs and %d kills in %.2f s"):format(hups, kills, took))
    -- quiet again: 4 workers, and one on_dead_worker call per killed
    -- worker (nothing else dies here: the workers reload on SIGHUP)
    H.wait_until(function()
      return select(2, H.workers_of(p.pid, "storm")) == 4 and p:count_events("^dead ") >= kills
    end, 10, "4 workers again")
    assert.are.equal(kills, p:count_events("^dead "))
    assert.are.same({ 0, 1, 2, 3 }, (function()
      local ids = {}
      for id in pairs(H.workers_of(p.pid, "storm")) do ids[#ids + 1] = id end
      table.sort(ids)
      return ids
    end)())
    assert.are.equal(0, H.zombies_of(p.pid))
    H.stop(p)
    local reloads = tonumber(p:wait_event("^reloads (%d+)$"))
    assert.is_true(reloads >= 1 and reloads <= hups)
  end)

  local RACE = [[
local S = { name = "racer" }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(1e9) end
function S:reload() ev("reload start %d", cotylua.getpid()) cotylua.sleep(RELOAD) ev("reload end %d", cotylua.getpid()) end
function S:terminate() ev("term start %d", cotylua.getpid()) cotylua.sleep(TERMINATE) ev("term end %d", cotylua.getpid()) end
local m = cotylua.manager({ graceful_shutdown_timeout = 20 })
m:add(S, { workers = 2 })
m:register_hooks({ on_terminate = function() ev("hook_terminate") end, on_reload = function() ev("hook_reload") end })
return m
]]

  local function race(reload, terminate)
    return (RACE:gsub("RELOAD", tostring(reload)):gsub("TERMINATE", tostring(terminate)))
  end

  it("delivers a SIGTERM that comes during reload at once", function()
    p = H.run_app(race(30, 0))
    H.wait_until(function() return p:count_events("^run ") == 2 end)
    assert(p:kill("HUP"))
    H.wait_until(function() return p:count_events("^reload start ") == 2 end)
    local t0 = proc.now()
    H.stop(p)
    -- the reload would take 30 s: the stop does not wait for it
    assert.is_true(proc.now() - t0 < 5, ("the stop took %.2f s"):format(proc.now() - t0))
    assert.are.equal(2, p:count_events("^term end "))
    assert.are.equal(0, p:count_events("^reload end "))
  end)

  it("ignores SIGHUP and a second SIGTERM during a shutdown", function()
    p = H.run_app(race(0, 0.5))
    H.wait_until(function() return p:count_events("^run ") == 2 end)
    assert(p:kill("TERM"))
    H.wait_until(function() return p:count_events("^term start ") == 2 end)
    assert(p:kill("HUP"))
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
    assert.are.equal(1, p:count_events("^hook_terminate$"))
    assert.are.equal(0, p:count_events("^hook_reload$"))
    assert.are.equal(0, p:count_events("^reload "))
    assert.are.equal(2, p:count_events("^term start "))
    assert.are.equal(2, p:count_events("^term end "))
    assert.matches("SIGHUP: ignored while stopping", p:stderr())
  end)

  it("exits at once with 1 on SIGINT during a shutdown", function()
    p = H.run_app(race(0, 30))
    H.wait_until(function() return p:count_events("^run ") == 2 end)
    assert(p:kill("TERM"))
    H.wait_until(function() return p:count_events("^term start ") == 2 end)
    local t0 = proc.now()
    assert(p:kill("INT"))
    assert.are.same({ code = 1 }, p:wait(5))
    -- "at once": well inside the 30 s that terminate would take
    assert.is_true(proc.now() - t0 < 2, ("SIGINT took %.2f s"):format(proc.now() - t0))
    assert.are.equal(0, p:count_events("^term end "))
  end)

  it("leaves none of 100 workers 2 s after the manager is SIGKILLed, each having run terminate", function()
    p = H.run_app([[
local S = { name = "hundred" }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(1e9) end
function S:terminate() ev("term %d", cotylua.getpid()) end
local m = cotylua.manager()
m:add(S, { workers = 100 })
return m
]])
    H.wait_until(function() return p:count_events("^run ") == 100 end, 10, "100 workers")
    assert(p:kill("KILL"))
    p:wait(5)
    H.wait_until(function() return #H.procs_in(p.dir) == 0 end, 2, "no worker left")
    assert.are.equal(100, p:count_events("^term "))
  end)

  it("stops workers that closed or redirected their stdout and stderr", function()
    p = H.run_app([[
local S = { name = "quiet" }
function S:run()
  ev("run %d", cotylua.getpid())
  if self.worker_id == 0 then io.stdout:close() io.stderr:close()
  else io.output("/dev/null") end
  cotylua.sleep(1e9)
end
function S:terminate() ev("term %d", self.worker_id) end
local m = cotylua.manager()
m:add(S, { workers = 2 })
return m
]])
    H.wait_until(function() return p:count_events("^run ") == 2 end)
    H.stop(p)
    assert.are.equal(2, p:count_events("^term "))
  end)

  it("resets the throttle of a slot in backoff on SIGHUP", function()
    p = H.run_app([[
local S = { name = "looper", restart = { burst = 1, delay = 30, max_delay = 30 } }
function S:run() ev("run %.3f", cotylua.now()) os.exit(1) end
local m = cotylua.manager()
m:add(S)
return m
]])
    H.wait_until(function() return p:count_events("^run ") == 2 end)
    H.wait_until(function() return p:stderr():find("next start in 30 s", 1, true) end)
    local t0 = proc.now()
    assert(p:kill("HUP"))
    H.wait_until(function() return p:count_events("^run ") >= 3 end, 2, "a start right after SIGHUP")
    -- the throttle's delay was 30 s
    assert.is_true(proc.now() - t0 < 5, ("the start came after %.2f s"):format(proc.now() - t0))
    H.stop(p)
  end)

  it("resets on reconfigure only the throttle of the slots that come or go", function()
    p = H.run_app([[
local S = { name = "looper", restart = { burst = 1, delay = 30, max_delay = 30 } }
function S:run() ev("run %d %.3f", self.worker_id, cotylua.now()) os.exit(1) end
local Trigger = { name = "trigger" }
function Trigger:run() ev("trigger %d", cotylua.getpid()) cotylua.sleep(1e9) end
local m = cotylua.manager()
local looper = m:add(S)
local trigger = m:add(Trigger)
m:register_hooks({ on_dead_worker = function(s) if s == trigger then m:reconfigure(looper, 2) end end })
return m
]])
    H.wait_until(function() return p:count_events("^run 0 ") == 2 end)
    H.wait_until(function() return p:stderr():find("looper worker(0) died 2 times", 1, true) end)
    local t0 = proc.now()
    assert(proc.kill(tonumber(p:wait_event("^trigger (%d+)$")), "KILL"))
    -- the new slot starts at once and goes through its own burst...
    H.wait_until(function() return p:count_events("^run 1 ") >= 1 end, 2, "worker 1 right after reconfigure")
    -- the throttle's delay was 30 s
    assert.is_true(proc.now() - t0 < 5, ("the start came after %.2f s"):format(proc.now() - t0))
    H.wait_until(function() return p:stderr():find("looper worker(1) died 2 times", 1, true) end)
    -- ...while worker 0 still waits out its 30 s
    assert.are.equal(2, p:count_events("^run 0 "))
    H.stop(p)
  end)

  it("logs a failed fork, keeps going, and starts the missing workers once fork works again", function()
    local cg = "/sys/fs/cgroup/pids"
    local probe = io.open(cg .. "/cgroup.procs")
    if not probe then
      pending("no cgroup v1 pids controller at " .. cg)
      return
    end
    probe:close()
    local group = cg .. "/cotylua-spec-" .. proc.getpid()
    assert(os.execute("mkdir -p " .. group))
    H.write(group .. "/pids.max", "3\n") -- the manager and 2 workers
    local dir = H.tmpdir()
    H.app(dir, H.prelude .. [[
local S = { name = "forky", restart = { delay = 0.2, max_delay = 0.4 } }
function S:run() ev("run %d", self.worker_id) cotylua.sleep(1e9) end
local m = cotylua.manager()
m:add(S, { workers = 4 })
return m
]])
    local ok, err = pcall(function()
      p = H.start{ dir = dir, argv = { "sh", "-c",
        "echo $$ > " .. group .. "/cgroup.procs && exec " .. H.bin .. " services.lua" } }
      H.wait_until(function() return p:count_events("^run ") == 2 end)
      H.wait_until(function()
        return p:stderr():find("fork%(%) failed while spawning forky worker%(%d%): Resource temporarily unavailable")
      end)
      assert.is_true(p:alive())
      H.write(group .. "/pids.max", "max\n")
      H.wait_until(function() return p:count_events("^run ") == 4 end, 5, "the missing workers")
      H.stop(p)
    end)
    H.cleanup(dir)
    os.execute("rmdir " .. group .. " 2>/dev/null")
    assert(ok, err)
  end)

  it("keeps supervising when it runs out of file descriptors, and recovers", function()
    p = H.run_app([[
local S = { name = "fdless", restart = { interval = 0 } }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(1e9) end
local m = cotylua.manager()
m:add(S)
m:register_hooks({ on_dead_worker = function(s, w, code) ev("dead %d", code) end })
return m
]])
    local first = tonumber(p:wait_event("^run (%d+)$"))
    local nfds = #H.fds(p.pid)
    assert(os.execute(("prlimit --pid %d --nofile=%d:"):format(p.pid, nfds)))
    local n = #p:events()
    assert(proc.kill(first, "KILL"))
    -- the hook cannot open the events file: logged; the worker still respawns
    local second = tonumber(p:wait_event("^run (%d+)$", 5, n))
    assert.are_not.equal(first, second)
    H.wait_until(function() return p:stderr():find("on_dead_worker hook #1 failed: [^\n]*Too many open files") end)
    assert(os.execute(("prlimit --pid %d --nofile=1024:"):format(p.pid)))
    n = #p:events()
    assert(proc.kill(second, "KILL"))
    p:wait_event("^dead %-9$", 5, n)
    H.stop(p)
  end)
end)
