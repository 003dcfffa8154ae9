-- reconfigure at run time against the manager's own duties: a hook cannot
-- turn the restart throttle off, and a big reconfigure does not hold up
-- the answer to a signal.
local H = require("helpers")
local proc = H.proc

describe("reconfigure", function()
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
end)
