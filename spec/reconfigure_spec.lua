-- reconfigure at run time against the manager's own duties: a hook cannot
-- turn the restart throttle off, and a big reconfigure does not hold up
-- the answer to a signal.
local H = require("helpers")
local proc = H.proc
-- the sanitizer build starts and stops processes several times more slowly
local SLOW = H.slow or 1

describe("reconfigure and start", function()
  it("to the same count in on_dead_worker leaves a crash loop throttled", function()
    local p = H.run_app([[
local S = { name = "crasher", restart = { burst = 5, interval = 10, delay = 1, max_delay = 1 } }
function S:run() ev("run %d", self.worker_id) os.exit(1) end
local m = cotylua.manager()
local id = m:add(S, { workers = 2 })
m:register_hooks({ on_dead_worker = function() m:reconfigure(id, 2) end })
return m
]])
    local t0 = proc.now()
    H.wait_until(function() return p:count_events("^run ") >= 10 end, 5, "the first bursts")
    -- both slots throttled: 6 starts each (the first and 5 immediate restarts),
    -- then one a second; 859 in 2 s when the hook reset the throttle
    proc.sleep(math.max(0, 2 - (proc.now() - t0)))
    local n = p:count_events("^run ")
    assert.is_true(n < 20, n .. " starts in 2 s")
    H.wait_until(function() return p:stderr():find("crasher worker(1) died 6 times", 1, true) end)
    H.stop(p)
  end)

  -- The time from SIGTERM until the manager logs that it stops, sent once
  -- the line started_pattern shows that the forks have begun.
  local function answer_while_spawning(p, started_pattern)
    p:wait_event(started_pattern, 20)
    local t0 = proc.now()
    assert(p:kill("TERM"))
    H.wait_until(function() return p:stderr():find("SIGTERM: stopping") end, 20, "the stop")
    local dt = proc.now() - t0
    assert.are.same({ code = 0 }, p:wait(60))
    return dt
  end

  it("to 500 workers answers a SIGTERM that comes meanwhile at once", function()
    local p = H.run_app([[
local S = { name = "many" }
function S:init() if self.worker_id == 1 then ev("second") end end
function S:reload() end
local m = cotylua.manager()
local id = m:add(S)
m:register_hooks({ on_reload = function() m:reconfigure(id, 500) end })
return m
]])
    H.wait_until(function() return H.proc_stat(p.pid).state == "S" and #H.children(p.pid) == 1 end)
    assert(p:kill("HUP"))
    local dt = answer_while_spawning(p, "^second$")
    -- 1.8 to 2 s when all 500 forks came before the signal; about 0.02 s in batches
    assert.is_true(dt < 0.5 * SLOW, ("SIGTERM answered after %.3f s"):format(dt))
  end)

  it("the first start of 500 workers answers a SIGTERM that comes meanwhile at once", function()
    local p = H.run_app([[
local S = { name = "many" }
function S:init() if self.worker_id == 1 then ev("second") end end
local m = cotylua.manager()
m:add(S, { workers = 500 })
return m
]])
    local dt = answer_while_spawning(p, "^second$")
    -- 4.7 s when all 500 forks came before the signal
    assert.is_true(dt < 0.5 * SLOW, ("SIGTERM answered after %.3f s"):format(dt))
  end)
end)
