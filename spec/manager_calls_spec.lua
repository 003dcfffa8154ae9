-- Calls on the manager from where they cannot work: from a worker, and a
-- services file that both runs the manager and returns it.
local H = require("helpers")

describe("calls on the manager", function()
  it("raise a clear error in a worker: shutdown() and reconfigure()", function()
    local p = H.run_app([[
local m = cotylua.manager()
local S = { name = "w" }
function S:run()
  local ok, err = pcall(function() m:shutdown() end)
  ev("shutdown %s %s", tostring(ok), tostring(err))
  ok, err = pcall(function() m:reconfigure(1, 3) end)
  ev("reconfigure %s %s", tostring(ok), tostring(err))
  cotylua.sleep(1e9)
end
m:add(S)
return m
]])
    local shutdown = p:wait_event("^shutdown .*")
    local reconfigure = p:wait_event("^reconfigure .*")
    assert.matches("^shutdown false .*services%.lua:%d+: manager:shutdown%(%) called in a worker", shutdown)
    assert.matches("^reconfigure false .*services%.lua:%d+: manager:reconfigure%(%) called in a worker",
      reconfigure)
    -- nothing changed: one worker, and the manager still runs
    assert.are.equal(1, select(2, H.workers_of(p.pid, "w")))
    assert.is_true(p:alive())
    H.stop(p)
  end)
end)
