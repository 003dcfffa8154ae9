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

  it("accept a file that calls manager:run() and also returns the manager", function()
    local p = H.run_app([[
local S = { name = "both" }
function S:run() ev("run") cotylua.sleep(1e9) end
local m = cotylua.manager()
m:add(S)
m:run()
ev("run returned")
return m
]])
    p:wait_event("^run$")
    H.stop(p, 0)
    assert.are.equal(1, p:count_events("^run returned$"))
    assert.is_nil(p:stderr():find("already called", 1, true))
  end)

  it("--check of such a file describes the services once", function()
    local dir = H.tmpdir()
    H.app(dir, H.prelude .. [[
local m = cotylua.manager()
m:add({ name = "both" }, { workers = 2 })
m:run()
return m
]])
    local q = H.start{ dir = dir, argv = { H.bin, "--check", dir .. "/services.lua" } }
    assert.are.same({ code = 0 }, q:wait(10))
    local _, n = q:stdout():gsub("1 service, 2 workers", "")
    assert.are.equal(1, n)
  end)
end)
