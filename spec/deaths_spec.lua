-- on_dead_worker's fourth argument says why a worker died: "crash" when it
-- died on its own (whatever its status), "stop" when the manager asked it
-- to stop (a restart on SIGHUP, a reconfigure down), so that an alert can
-- tell a crash from a routine reload.
local H = require("helpers")
local proc = H.proc

describe("on_dead_worker", function()
  it("tells a crash from a stop the manager asked for", function()
    local p = H.run_app([[
local S = { name = "mortal", restart = { interval = 0 } } -- no reload(): SIGHUP restarts
function S:run() ev("run %d %d", self.worker_id, cotylua.getpid()) cotylua.sleep(1e9) end
local m = cotylua.manager()
local id = m:add(S, { workers = 2 })
m:register_hooks({
  on_dead_worker = function(s, w, code, why) ev("dead %d %d %s", w, code, tostring(why)) end,
  on_reload = function() if os.getenv("EVENTS") and io.open(os.getenv("EVENTS") .. ".down") then
    m:reconfigure(id, 1) end end,
})
return m
]])
    H.wait_until(function() return p:count_events("^run ") == 2 end)
    -- a crash: killed, or exiting 0 on its own
    local n = #p:events()
    assert(proc.kill(tonumber(p:wait_event("^run 1 (%d+)$")), "KILL"))
    p:wait_event("^dead 1 %-9 crash$", 5, n)
    p:wait_event("^run 1 ", 5, n)
    -- a restart on SIGHUP: both workers stop because they were asked to
    assert(p:kill("HUP"))
    local ok = pcall(H.wait_until, function() return p:count_events("^dead %d 0 stop$") == 2 end, 10)
    assert(ok, "2 stops in:\n" .. table.concat(p:events(), "\n") .. p:stderr())
    H.wait_until(function() return p:count_events("^run ") == 5 end, 10, "2 new workers")
    -- a reconfigure down: worker 1 is stopped, worker 0 restarted with the reload
    H.write(H.events_file(p.dir) .. ".down", "")
    local worker1_runs = p:count_events("^run 1 ")
    assert(p:kill("HUP"))
    H.wait_until(function() return p:count_events("^dead %d 0 stop$") == 4 end, 10, "2 more stops")
    H.wait_until(function() return p:count_events("^run ") == 6 end, 10, "worker 0 again")
    assert.are.equal(1, p:count_events("crash$"), "only the kill was a crash")
    assert.are.equal(worker1_runs, p:count_events("^run 1 "), "worker 1 is gone")
    H.stop(p)
  end)
end)
