-- Long runs that only the normal build takes (tags soak and valgrind): ten
-- thousand deaths and respawns, and a whole lifecycle under valgrind.
local H = require("helpers")
local proc = H.proc

local function rss_kib(pid)
  return tonumber(H.proc_status(pid).VmRSS:match("(%d+)"))
end

-- The manager's fds but the events file, which its hook opens for an
-- instant to write each line (the count may be taken in that instant).
local function manager_fds(p)
  local events, n = H.events_file(p.dir), 0
  for _, fd in ipairs(H.fds(p.pid)) do
    if proc.readlink(("/proc/%d/fd/%d"):format(p.pid, fd)) ~= events then n = n + 1 end
  end
  return n
end

describe("soak", function()
  local p

  it("keeps its fds and memory through 10,000 deaths and respawns #soak", function()
    local TOTAL, WARM = 10000, 200
    p = H.run_app(([[
local S = { name = "ephemeral", restart = { interval = 0 } }
local calm = false -- set in the manager at the end: workers forked after it stay up
function S:run()
  if calm then ev("calm") cotylua.sleep(1e9) end
  os.exit(0)
end
local m = cotylua.manager()
m:add(S, { workers = 2 })
local deaths = 0
m:register_hooks({ on_dead_worker = function(s, w, code)
  deaths = deaths + 1
  if deaths == %d or deaths %% 1000 == 0 then ev("deaths %%d", deaths) end
  if deaths == %d then calm = true end
end })
return m
]]):format(WARM, TOTAL))
    p:wait_event("^deaths " .. WARM .. "$", 20)
    local fds0, rss0 = manager_fds(p), rss_kib(p.pid)
    -- A bound on each thousand, not on the whole: a busy machine slows
    -- the soak down, a stalled manager stops it.
    for n = 1000, TOTAL, 1000 do p:wait_event("^deaths " .. n .. "$", 60) end
    local fds1, rss1 = manager_fds(p), rss_kib(p.pid)
    assert.are.equal(fds0, fds1, "fds of the manager")
    -- the Lua heap of the hooks may settle a few pages higher; a leak of
    -- even 32 bytes a death would add over 300 KiB
    assert.is_true(rss1 - rss0 <= 128, ("RSS grew from %d to %d KiB"):format(rss0, rss1))
    H.wait_until(function() return p:count_events("^calm$") == 2 end, 5, "2 calm workers")
    assert.are.equal(0, H.zombies_of(p.pid))
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(10))
  end)

  it("runs a whole lifecycle under valgrind with no error and no leak #valgrind", function()
    local dir = H.tmpdir()
    H.app(dir, H.prelude .. [[
local S = { name = "checked" }
function S:run() ev("run %d", cotylua.getpid()) cotylua.sleep(1e9) end
function S:reload() ev("reload %d", cotylua.getpid()) end
function S:terminate() ev("term %d", cotylua.getpid()) end
local m = cotylua.manager()
m:add(S, { workers = 2 })
m:add({ name = "plain" })
m:register_hooks({ on_dead_worker = function(s, w, code) ev("dead %d %d %d", s, w, code) end })
return m
]])
    p = H.start{ dir = dir, argv = { "valgrind", "--leak-check=full", "--error-exitcode=99",
      "--child-silent-after-fork=yes", "--errors-for-leak-kinds=definite,indirect", H.bin, "services.lua" } }
    H.wait_until(function() return p:count_events("^run ") == 2 end, 30, "2 workers under valgrind")
    assert(p:kill("HUP"))
    H.wait_until(function() return p:count_events("^reload ") == 2 end, 30, "2 reloads")
    local pid = tonumber(p:events()[1]:match("^run (%d+)$"))
    assert(proc.kill(pid, "KILL"))
    p:wait_event("^dead 1 %d %-9$", 30)
    H.wait_until(function() return p:count_events("^run ") == 3 end, 30, "the respawn")
    assert(p:kill("TERM"))
    assert.are.same({ code = 0 }, p:wait(60), p:stderr())
    local err = p:stderr()
    assert.matches("ERROR SUMMARY: 0 errors", err)
    assert.matches("definitely lost: 0 bytes", err)
    assert.matches("indirectly lost: 0 bytes", err)
  end)
end)
