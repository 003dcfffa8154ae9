-- The processes around the workers: the manager reaps only what is its
-- own, and no process that a worker started outlives it.
local H = require("helpers")
local proc = H.proc

describe("processes", function()
  it("a manager hook's io.popen():close() gets the command's exit status", function()
    local p = H.run_app([[
local S = { name = "w" }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(1e9) end
function S:reload() end
local m = cotylua.manager()
m:add(S)
local f
m:register_hooks({
  on_reload = function()
    if not f then
      f = io.popen("echo started; exit 3")
      ev("popen %s", f:read("l"))
    else
      ev("close %s %s %s", f:close())
    end
  end,
})
return m
]])
    local worker = tonumber(p:wait_event("^run (%d+)$"))
    assert(p:kill("HUP"))
    p:wait_event("^popen started$")
    -- the command has ended and the manager got a SIGCHLD for it; a worker
    -- death makes sure the manager reaped meanwhile
    H.wait_until(function() return #H.children(p.pid) == 1 end, 2, "the command to end")
    assert(proc.kill(worker, "KILL"))
    H.wait_until(function() return p:count_events("^run ") == 2 end, 2, "the respawn")
    assert(p:kill("HUP"))
    assert.are.equal("close nil exit 3", p:wait_event("^close .*"))
    H.stop(p)
  end)
end)
