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

  -- A worker that starts a daemon (sh puts it in the background and exits:
  -- the daemon stays in the worker's process group), a child through
  -- io.popen, and one through os.execute, where it waits.
  local FAMILY = [[
local S = { name = "family" }
function S:run()
  os.execute("sleep 302 &")
  self.pipe = io.popen("exec sleep 301")
  ev("run %d %d", self.worker_id, cotylua.getpid())
  os.execute("exec sleep 300")
end
function S:reload() end
local m = cotylua.manager()
local id = m:add(S, { workers = tonumber(os.getenv("WORKERS")) })
m:register_hooks({ on_reload = function() m:reconfigure(id, 1) end })
return m
]]

  -- The sleeps started by the workers: { pid = pgrp }, and how many.
  local function sleeps(dir)
    local out, n = {}, 0
    for _, pid in ipairs(H.procs_in(dir)) do
      if (H.cmdline(pid) or ""):find("^sleep 30[012]$") then
        out[pid] = H.proc_stat(pid).pgrp
        n = n + 1
      end
    end
    return out, n
  end

  -- Starts FAMILY with `workers` workers, each with its three sleeps.
  local function start(workers)
    local p = H.run_app(FAMILY, "binary", { env = { "WORKERS=" .. workers } })
    H.wait_until(function() return p:count_events("^run ") == workers end)
    H.wait_until(function() return select(2, sleeps(p.dir)) == 3 * workers end, 5, "the sleeps")
    return p
  end

  -- Waits until the only sleeps left are the three in worker pid's group.
  local function only_group_of(p, pid, what)
    H.wait_until(function()
      local list, n = sleeps(p.dir)
      for _, pgrp in pairs(list) do
        if pgrp ~= pid then return false end
      end
      return n == 3
    end, 3, what)
  end

  it("no child, grandchild or daemon of a worker outlives a SIGTERM", function()
    local p = start(1)
    H.stop(p)
    H.wait_until(function() return #H.procs_in(p.dir) == 0 end, 2, "every process of the worker to end")
  end)

  it("no child, grandchild or daemon of a worker outlives a SIGINT", function()
    local p = start(1)
    assert(p:kill("INT"))
    assert.are.same({ code = 1 }, p:wait(5))
    H.wait_until(function() return #H.procs_in(p.dir) == 0 end, 2, "every process of the worker to end")
  end)

  it("what a crashed worker started is killed once it is reaped", function()
    local p = start(1)
    local old = tonumber(p:wait_event("^run 0 (%d+)$"))
    assert(proc.kill(old, "KILL"))
    local new = tonumber(p:wait_event("^run 0 (%d+)$", 5, p:index_of("^run 0 " .. old)))
    only_group_of(p, new, "only the new worker's sleeps")
    H.stop(p)
  end)

  it("what a worker that reconfigure removes started goes with it", function()
    local p = start(2)
    local first = tonumber(p:wait_event("^run 0 (%d+)$"))
    assert(p:kill("HUP"))
    only_group_of(p, first, "only worker 0's sleeps")
    H.stop(p)
  end)
end)
