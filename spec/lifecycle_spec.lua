-- The whole lifecycle of cotyledon's functional suite, for Lua services:
-- started workers, SIGHUP, SIGTERM, SIGINT and SIGKILL to the manager,
-- signals to single workers, and the hooks. Each scenario runs twice: with
-- the cotylua binary and under a plain lua5.4 with require("cotylua").
local H = require("helpers")
local proc = H.proc

local WORKFLOW = [[
local function me(self) return self.name, self.worker_id, cotylua.getpid() end

local Reloadable = { name = "reloadable" }
function Reloadable:init(a, b) ev("init %s %d %d %s %s", self.name, self.worker_id, cotylua.getpid(), a, b) end
function Reloadable:run() ev("run %s %d %d", me(self)) cotylua.sleep(1e9) end
function Reloadable:reload() ev("reload %s %d %d", me(self)) end
function Reloadable:terminate() ev("term %s %d %d", me(self)) end

local Plain = { name = "plain" } -- no reload: SIGHUP restarts it
function Plain:run() ev("run %s %d %d", me(self)) end -- returns: the worker idles
function Plain:terminate() ev("term %s %d %d", me(self)) end

local Exit42 = { name = "exit42" }
function Exit42:run() ev("run %s %d %d", me(self)) cotylua.sleep(1e9) end
function Exit42:terminate() ev("term %s %d %d", me(self)) os.exit(42) end

local Bare = { name = "bare" } -- neither run nor terminate
function Bare:init() ev("run %s %d %d", me(self)) end

local manager = cotylua.manager({ graceful_shutdown_timeout = 10 })
manager:add(Reloadable, { workers = 2, args = { "A", "B" } })
manager:add(Plain)
manager:add(Exit42)
manager:add(Bare)
manager:register_hooks({
  on_terminate = function() ev("hook_terminate 1") end,
  on_reload = function() ev("hook_reload") end,
  on_new_worker = function(sid, wid, svc) ev("new %d %d %s %s", sid, wid, svc.name, tostring(svc.service_id == sid)) end,
  on_dead_worker = function(sid, wid, code) ev("dead %d %d %d", sid, wid, code) end,
})
manager:register_hooks({ on_terminate = function() ev("hook_terminate 2") end })
return manager
]]

local SERVICES = { { "reloadable", 0 }, { "reloadable", 1 }, { "plain", 0 }, { "exit42", 0 }, { "bare", 0 } }

-- Waits for every worker of WORKFLOW to be in run; returns pids by "name id".
local function all_running(p)
  local pids = {}
  for _, s in ipairs(SERVICES) do
    local key = s[1] .. " " .. s[2]
    pids[key] = tonumber(p:wait_event("^run " .. key .. " (%d+)$"))
  end
  return pids
end

for _, mode in ipairs({ "binary", "lua" }) do
  describe("lifecycle (" .. mode .. ")", function()
    local p


    it("starts every worker with its id, args, title and on_new_worker", function()
      p = H.run_app(WORKFLOW, mode)
      local pids = all_running(p)
      assert.truthy(p:wait_event("^init reloadable 0 %d+ A B$"))
      assert.truthy(p:wait_event("^init reloadable 1 %d+ A B$"))
      for sid, name in ipairs({ "reloadable", "plain", "exit42", "bare" }) do
        assert.truthy(p:wait_event(("^new %d 0 %s true$"):format(sid, name)))
      end
      assert.truthy(p:wait_event("^new 1 1 reloadable true$"))
      assert.are.equal("cotylua: reloadable worker(1)", H.cmdline(pids["reloadable 1"]))
      assert.are.equal("cotylua: exit42 worker(0)", H.cmdline(pids["exit42 0"]))
      assert.are.equal("cotylua: reload", H.comm(pids["reloadable 0"]))
      assert.matches("^cotylua: master process %[.*services.lua%]$", H.cmdline(p.pid))
      assert.are.equal("cotylua", H.comm(p.pid)) -- for pidof and pgrep -x
      local kids = H.children(p.pid)
      assert.are.equal(5, #kids)
      H.stop(p)
    end)

    it("reloads a worker that has reload() and restarts one that has none on SIGHUP", function()
      p = H.run_app(WORKFLOW, mode)
      local pids = all_running(p)
      assert(p:kill("HUP"))
      assert.truthy(p:wait_event("^hook_reload$"))
      assert.truthy(p:wait_event("^reload reloadable 0 " .. pids["reloadable 0"] .. "$"))
      assert.truthy(p:wait_event("^reload reloadable 1 " .. pids["reloadable 1"] .. "$"))
      assert.truthy(p:wait_event("^term plain 0 " .. pids["plain 0"] .. "$"))
      assert.truthy(p:wait_event("^dead 2 0 0$"))
      local newpid = tonumber(p:wait_event("^run plain 0 (%d+)$", 5, p:index_of("^dead 2 0 0$")))
      assert.are_not.equal(pids["plain 0"], newpid)
      -- exit42 has no reload either: it runs terminate, which exits 42
      assert.truthy(p:wait_event("^dead 3 0 42$"))
      assert.truthy(p:wait_event("^dead 4 0 0$"))
      assert.is_true(proc.alive(pids["reloadable 0"]))
      assert.are.equal(0, p:count_events("^dead 1 "))
      H.stop(p)
    end)

    it("sees a terminate that exits 42 as 42 and respawns the same worker id", function()
      p = H.run_app(WORKFLOW, mode)
      local pids = all_running(p)
      assert(proc.kill(pids["exit42 0"], "TERM"))
      assert.truthy(p:wait_event("^term exit42 0 " .. pids["exit42 0"] .. "$"))
      p:wait_event("^dead 3 0 42$")
      local at = p:index_of("^dead 3 0 42$")
      local newpid = tonumber(p:wait_event("^run exit42 0 (%d+)$", 5, at))
      assert.are_not.equal(pids["exit42 0"], newpid)
      assert.truthy(p:wait_event("^new 3 0 exit42 true$", 5, at))
      H.stop(p)
    end)

    it("stops a worker without terminate with status 0 and respawns it", function()
      p = H.run_app(WORKFLOW, mode)
      local pids = all_running(p)
      assert(proc.kill(pids["bare 0"], "TERM"))
      p:wait_event("^dead 4 0 0$")
      local newpid = tonumber(p:wait_event("^run bare 0 (%d+)$", 5, p:index_of("^dead 4 0 0$")))
      assert.are_not.equal(pids["bare 0"], newpid)
      H.stop(p)
    end)

    it("runs on_terminate hooks in order and every terminate on SIGTERM, then exits 0", function()
      p = H.run_app(WORKFLOW, mode)
      all_running(p)
      H.stop(p, 0)
      local h1, h2 = p:index_of("^hook_terminate 1$"), p:index_of("^hook_terminate 2$")
      assert.truthy(h1 and h2 and h1 < h2)
      for _, s in ipairs({ "reloadable 0", "reloadable 1", "plain 0", "exit42 0" }) do
        local t = p:index_of("^term " .. s .. " ")
        assert.truthy(t and t > h2, "terminate of " .. s)
      end
      assert.are.equal(0, p:count_events("^dead "), "on_dead_worker is not called during a shutdown")
      assert.are.same({}, H.procs_in(p.dir))
    end)

    it("exits 1 at once on SIGINT, without hooks or terminate", function()
      p = H.run_app(WORKFLOW, mode)
      all_running(p)
      assert(p:kill("INT"))
      assert.are.same({ code = 1 }, p:wait(5))
      assert.are.equal(0, p:count_events("^term "))
      assert.are.equal(0, p:count_events("^hook_"))
      assert.are.same({}, H.procs_in(p.dir))
    end)

    it("leaves no orphan when the manager is SIGKILLed: every worker runs terminate", function()
      p = H.run_app(WORKFLOW, mode)
      local pids = all_running(p)
      assert(p:kill("KILL"))
      assert.are.same({ signal = 9 }, p:wait(5))
      for _, s in ipairs({ "reloadable 0", "reloadable 1", "plain 0", "exit42 0" }) do
        assert.truthy(p:wait_event("^term " .. s .. " " .. pids[s] .. "$", 2))
      end
      H.wait_until(function() return #H.procs_in(p.dir) == 0 end, 2, "every worker to exit")
    end)
  end)
end
