-- The manager's own duties: reconfigure at run time, reaching workers that
-- left its process group, Ctrl-C, no zombie, no wake-up while idle, the
-- restart throttle, and its log lines.
local H = require("helpers")
local proc = H.proc

local CPATH = "package.cpath = " .. string.format("%q", H.root .. "/build/spec/?.so;") .. " .. package.cpath\n"

describe("manager", function()
  local p

  it("reconfigures up and down at run time, stopping the highest worker ids first", function()
    p = H.run_app([[
local S = { name = "pool" }
function S:run() ev("run %d %d", self.worker_id, cotylua.getpid()) cotylua.sleep(1e9) end
function S:terminate() ev("term %d", self.worker_id) end
local m = cotylua.manager()
local id = m:add(S, { workers = 2 })
local sizes, n = { 5, 3, 1 }, 0
m:register_hooks({
  on_reload = function() n = n + 1 m:reconfigure(id, sizes[n]) end,
  on_dead_worker = function(s, w, code) ev("dead %d %d", w, code) end,
})
return m
]])
    -- the live workers' ids, e.g. "0,1,2", read from their titles
    local function pool() return table.concat(H.keys(H.workers_of(p.pid, "pool")), ",") end
    H.wait_until(function() return pool() == "0,1" end)
    local before = H.workers_of(p.pid, "pool")
    assert(p:kill("HUP"))
    H.wait_until(function() return pool() == "0,1,2,3,4" end, 5, "workers 0 to 4")
    assert(p:kill("HUP"))
    H.wait_until(function() return pool() == "0,1,2" end, 5, "workers 0 to 2")
    p:wait_event("^term 3$")
    p:wait_event("^term 4$")
    assert(p:kill("HUP"))
    -- worker 0 was only restarted (no reload()), never removed
    H.wait_until(function() return pool() == "0" end, 5, "worker 0 alone")
    local after = H.workers_of(p.pid, "pool")
    assert.are_not.equal(before[0], after[0])
    assert.are.equal(0, H.zombies_of(p.pid))
    H.stop(p)
  end)

  it("reaches, stops and reaps a worker that left the manager's process group", function()
    p = H.run_app(CPATH .. [[
local hp = require("proc")
local S = { name = "loner" }
function S:init() hp.setsid() end
function S:run() ev("run %d %d", cotylua.getpid(), hp.getpgid()) cotylua.sleep(1e9) end
function S:reload() ev("reload %d", cotylua.getpid()) end
function S:terminate() ev("term %d", cotylua.getpid()) end
local m = cotylua.manager()
m:add(S)
return m
]])
    local pid, pgid = p:wait_event("^run (%d+) (%d+)$")
    assert.are.equal(pid, pgid)
    assert(p:kill("HUP"))
    p:wait_event("^reload " .. pid .. "$")
    H.stop(p)
    assert.truthy(p:wait_event("^term " .. pid .. "$", 0))
  end)

  it("kills a worker that blocks every signal once its graceful timeout passes", function()
    p = H.run_app(CPATH .. [[
local hp = require("proc")
local S = { name = "deaf", graceful_shutdown_timeout = 0.3 }
function S:run() hp.sigblock_all() ev("run %d", cotylua.getpid()) while true do end end
local m = cotylua.manager()
m:add(S)
return m
]])
    p:wait_event("^run %d+$")
    local t0 = proc.now()
    H.stop(p)
    local elapsed = proc.now() - t0
    assert.is_true(elapsed >= 0.3 and elapsed < 3, "stopped after " .. elapsed)
    assert.matches("did not stop within 0.3 s; sending SIGKILL", p:stderr())
  end)

  it("treats Ctrl-C (SIGINT to the whole process group) as one SIGINT", function()
    p = H.run_app([[
local S = { name = "fg" }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(1e9) end
function S:terminate() ev("term") end
local m = cotylua.manager()
m:add(S, { workers = 3 })
m:register_hooks({
  on_dead_worker = function() ev("dead") end,
  on_terminate = function() ev("hook_terminate") end,
})
return m
]])
    H.wait_until(function() return p:count_events("^run ") == 3 end)
    assert(proc.killpg(p.pgid, "INT"))
    assert.are.same({ code = 1 }, p:wait(5))
    assert.are.equal(3, p:count_events("^run "), "no worker was respawned")
    assert.are.equal(0, p:count_events("^dead"))
    assert.are.equal(0, p:count_events("^term"))
    assert.are.equal(0, p:count_events("^hook_"))
  end)

  it("makes no wake-up while idle", function()
    p = H.run_app([[
local S = { name = "idle" }
function S:run() ev("run") end
local m = cotylua.manager()
m:add(S, { workers = 2 })
return m
]])
    H.wait_until(function() return p:count_events("^run$") == 2 end)
    H.wait_until(function() return H.proc_stat(p.pid).state == "S" end)
    local function switches()
      local st = H.proc_status(p.pid)
      return tonumber(st.voluntary_ctxt_switches) + tonumber(st.nonvoluntary_ctxt_switches)
    end
    local before = switches()
    local deadline = proc.now() + 1
    H.wait_until(function() return proc.now() >= deadline end, 2, "one idle second")
    assert.are.equal(before, switches(), "the manager woke up while idle")
    H.stop(p)
  end)

  -- The manager checks for a pending signal between two forks: once the
  -- SIGTERM is sent it forks at most the worker it was forking then (and
  -- one more if its log line had not been read yet). Counted, not timed,
  -- so that a loaded machine does not fail it: on a quiet one the answer
  -- comes within a fork (under 1 ms), where the whole start takes 0.7 s.
  it("answers a SIGTERM during the start of 1000 workers before it forks again", function()
    p = H.run_app([[
local S = { name = "many" }
function S:run() ev("run") end
local m = cotylua.manager({ log_level = "debug" })
m:add(S, { workers = 1000 })
m:register_hooks({ on_terminate = function() ev("terminate %.6f", cotylua.now()) end })
return m
]])
    local function forks(log) return select(2, log:gsub("started many worker%(", "")) end
    H.wait_until(function() return forks(p:stderr()) >= 20 end, 30, "20 workers forked")
    local before = forks(p:stderr())
    local t0 = proc.now()
    assert(p:kill("TERM"))
    local t1 = tonumber(p:wait_event("^terminate ([%d.]+)$", 10))
    local log = p:stderr()
    local answered = log:find("SIGTERM: stopping", 1, true)
    assert.truthy(answered, "no answer in the log")
    local after = forks(log:sub(1, answered)) - before
    assert.is_true(after <= 2, ("%d forks after the SIGTERM (answered after %.1f ms)"):format(after, (t1 - t0) * 1e3))
    assert.are.same({ code = 0 }, p:wait(60 * H.slow))
    assert.are.equal(forks(log:sub(1, answered)), forks(p:stderr()), "a worker was forked after the answer")
  end)

  it("throttles a crash loop without blocking, and answers SIGTERM during the backoff", function()
    p = H.run_app([[
local S = { name = "crasher" }
function S:run() ev("run %.3f", cotylua.now()) os.exit(7) end
local m = cotylua.manager()
m:add(S)
m:register_hooks({ on_dead_worker = function(s, w, code) ev("dead %d", code) end })
return m
]])
    -- 1 start + 5 immediate restarts, then a 1 s backoff, then 2 s.
    H.wait_until(function() return p:count_events("^run ") >= 6 end, 5, "6 starts")
    H.wait_until(function() return p:count_events("^dead 7$") >= 6 end, 5, "6 deaths")
    -- the hook runs before the throttle's warning: wait for the line
    H.wait_until(function() return p:stderr():find("crasher worker%(0%) died 6 times in [%d.e-]+ s; next start in 1 s") end,
      5, "the throttle's warning")
    local times = {}
    H.wait_until(function()
      times = {}
      for _, line in ipairs(p:events()) do
        local t = line:match("^run ([%d.]+)$")
        if t then times[#times + 1] = tonumber(t) end
      end
      return #times >= 7
    end, 5, "the 7th start")
    -- The policy's decisions are in the log: no delay before the 6th death.
    local first_delay = p:stderr():match("worker%(0%) died (%d+) times in [%d.e-]+ s; next start in")
    assert.are.equal("6", first_delay, "the first 5 restarts were immediate")
    -- A delay is never shorter than the policy's; an immediate restart
    -- has a generous bound (a busy machine stretches every fork).
    local backoff = times[7] - times[6]
    assert.is_true(backoff >= 0.9, "the 7th start waited " .. backoff)
    for i = 1, 5 do
      assert.is_true(times[i + 1] - times[i] < 2, "restart " .. i .. " took " .. (times[i + 1] - times[i]))
    end
    H.wait_until(function() return p:count_events("^dead 7$") >= 7 end)
    H.wait_until(function() return p:stderr():find("next start in 2 s", 1, true) end)
    local t0 = proc.now()
    H.stop(p)
    -- sooner than the 2 s backoff it interrupts
    assert.is_true(proc.now() - t0 < 1.5, "SIGTERM during a backoff took " .. (proc.now() - t0))
    assert.are.equal(7, p:count_events("^run "), "no start after SIGTERM")
  end)

  it("logs a failing hook, skips the later hooks of its kind, and still reloads the workers", function()
    p = H.run_app([[
local S = { name = "hooked" }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(1e9) end
function S:reload() ev("reload") end
local m = cotylua.manager()
m:add(S)
m:register_hooks({ on_reload = function() ev("hook 1") end })
m:register_hooks({ on_reload = function() error("hook 2 fails") end })
m:register_hooks({ on_reload = function() ev("hook 3") end, on_terminate = function() ev("term hook") end })
return m
]])
    p:wait_event("^run %d+$")
    assert(p:kill("HUP"))
    p:wait_event("^reload$")
    assert.are.equal(1, p:count_events("^hook 1$"))
    assert.are.equal(0, p:count_events("^hook 3$"))
    assert.matches("on_reload hook #2 failed: [^\n]*hook 2 fails", p:stderr())
    assert.matches("stack traceback:", p:stderr())
    H.stop(p)
    assert.are.equal(1, p:count_events("^term hook$"))
  end)

  it("ignores SIGUSR1, SIGUSR2 and SIGPIPE", function()
    p = H.run_app([[
local S = { name = "calm" }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(1e9) end
function S:reload() ev("reload") end
local m = cotylua.manager()
m:add(S)
m:register_hooks({ on_dead_worker = function() ev("dead") end })
return m
]])
    local pid = p:wait_event("^run (%d+)$")
    for _, sig in ipairs({ "USR1", "USR2", "PIPE", "USR1" }) do assert(p:kill(sig)) end
    assert(p:kill("HUP")) -- a signal it handles, sent after the others
    p:wait_event("^reload$")
    assert.is_true(p:alive())
    assert.is_true(proc.alive(tonumber(pid)))
    assert.are.equal(0, p:count_events("^dead"))
    H.stop(p)
  end)

  it("takes its restart throttle from the service table and add()", function()
    p = H.run_app([[
local S = { name = "quick", restart = { burst = 1, delay = 0.4, max_delay = 0.4 } }
function S:run() ev("run %s %.3f", self.name, cotylua.now()) os.exit(1) end
local m = cotylua.manager({ restart = { burst = 1000 } })
m:add(S)
m:add(S, { name = "other", restart = { burst = 2, delay = 0.3, max_delay = 0.3 } })
return m
]])
    local function starts(name)
      local t = {}
      for _, line in ipairs(p:events()) do
        local v = line:match("^run " .. name .. " ([%d.]+)$")
        if v then t[#t + 1] = tonumber(v) end
      end
      return t
    end
    H.wait_until(function() return #starts("quick") >= 4 and #starts("other") >= 5 end, 5, "restarts")
    local q, o = starts("quick"), starts("other")
    -- The first delay each policy logged, then the intervals it produced:
    -- a delayed restart never comes sooner than its delay, and an
    -- immediate one comes sooner than any delayed one.
    local err = p:stderr()
    assert.matches("quick worker%(0%) died 2 times in [%d.e-]+ s; next start in 0.4 s", err)
    assert.matches("other worker%(0%) died 3 times in [%d.e-]+ s; next start in 0.3 s", err)
    assert.is_nil(err:find("quick worker%(0%) died 1 times"), "one immediate restart")
    assert.is_nil(err:find("other worker%(0%) died [12] times"), "two immediate restarts")
    assert.is_true(q[3] - q[2] >= 0.35 and q[4] - q[3] >= 0.35, "then 0.4 s each")
    assert.is_true(o[4] - o[3] >= 0.25, "then 0.3 s")
    assert.is_true(math.max(q[2] - q[1], o[2] - o[1], o[3] - o[2]) < 2, "immediate restarts")
    H.stop(p)
  end)

  it("runs as PID 1 of a pid namespace: reaps orphans, stops on SIGTERM", function()
    local dir = H.tmpdir()
    H.app(dir, H.prelude .. [[
local S = { name = "contained" }
function S:run()
  os.execute("sleep 1 &") -- the shell exits: sleep becomes an orphan of PID 1
  ev("run %d", cotylua.getpid())
  cotylua.sleep(1e9)
end
function S:terminate() ev("term") end
local m = cotylua.manager()
m:add(S)
return m
]])
    p = H.start{ dir = dir, argv = { "unshare", "--pid", "--fork", "--kill-child", H.bin, "services.lua" } }
    assert.are.equal("2", p:wait_event("^run (%d+)$")) -- pid 2 in its namespace: the manager is 1
    local init = H.wait_until(function() return H.children(p.pid)[1] end)
    assert.matches("^cotylua: master process", H.cmdline(init))
    local function orphan()
      for _, pid in ipairs(proc.pids()) do
        local st = H.proc_stat(pid)
        if st and st.ppid == init and st.comm == "sleep" then return pid end
      end
    end
    H.wait_until(orphan, 2, "the sleep to become the manager's orphan")
    H.wait_until(function() return not orphan() end, 3, "the orphaned sleep to be reaped")
    assert(proc.kill(init, "TERM"))
    assert.are.same({ code = 0 }, p:wait(5))
    assert.are.equal(1, p:count_events("^term$"))
  end)

  it("logs one line per event with time, level, process name and pid, at the level asked", function()
    local body = [[
local S = { name = "talker" }
function S:run() cotylua.log.debug("dbg %d", 1) cotylua.log.info("info %s", "two") cotylua.log.warning("warn") ev("run %d", cotylua.getpid()) end
local m = cotylua.manager()
m:add(S)
return m
]]
    p = H.run_app(body, "binary", { args = {} })
    local pid = p:wait_event("^run (%d+)$")
    H.stop(p)
    local err = p:stderr()
    local ts = "%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d%.%d%d%d"
    assert.matches("\n?" .. ts .. " INFO talker worker%(0%)%[" .. pid .. "%]: info two\n", err)
    assert.matches(ts .. " WARNING talker worker%(0%)%[" .. pid .. "%]: warn\n", err)
    assert.matches(ts .. " INFO master%[" .. p.pid .. "%]: SIGTERM: stopping 1 worker\n", err)
    assert.is_nil(err:find("dbg 1", 1, true))

    p = H.run_app(body, "binary", { env = { "COTYLUA_LOG_LEVEL=warning" } })
    p:wait_event("^run %d+$")
    H.stop(p)
    err = p:stderr()
    assert.matches("WARNING talker worker%(0%)%[%d+%]: warn\n", err)
    assert.is_nil(err:find("INFO", 1, true))

    local dir = H.tmpdir()
    H.app(dir, H.prelude .. body)
    p = H.start{ dir = dir, argv = { H.bin, "--log-level", "debug", "services.lua" } }
    p:wait_event("^run %d+$")
    H.stop(p)
    err = p:stderr()
    assert.matches("DEBUG talker worker%(0%)%[%d+%]: dbg 1\n", err)
    assert.matches("DEBUG master%[%d+%]: started talker worker%(0%) %[pid %d+%]\n", err)

    -- the manager's log_level option, and the operator's choices above it
    local quiet = body:gsub("cotylua%.manager%(%)", 'cotylua.manager({ log_level = "error" })')
    p = H.run_app(quiet)
    p:wait_event("^run %d+$")
    H.stop(p)
    assert.is_nil(p:stderr():find("WARNING", 1, true), "log_level = error in the file")
    p = H.run_app(quiet, "binary", { env = { "COTYLUA_LOG_LEVEL=warning" } })
    p:wait_event("^run %d+$")
    H.stop(p)
    assert.matches("WARNING talker worker%(0%)%[%d+%]: warn\n", p:stderr())
    dir = H.tmpdir()
    H.app(dir, H.prelude .. quiet)
    p = H.start{ dir = dir, argv = { H.bin, "--log-level", "debug", "services.lua" },
      env = { "COTYLUA_LOG_LEVEL=error" } }
    p:wait_event("^run %d+$")
    H.stop(p)
    assert.matches("DEBUG talker worker%(0%)%[%d+%]: dbg 1\n", p:stderr())
  end)
end)
