-- bench/apps/floor.lua - the floor's side of the benchmark.
--
--   floor bench/apps/floor.lua KIND N
--
-- The app of services.lua for bench/floor.c: plain functions, called with
-- the worker id and the pid, that report the same lines on stdout.
local kind = ...

local function report(what, wid, pid)
  io.stdout:write(string.format("%s %d %d\n", what, wid, pid))
  io.stdout:flush()
end

local idle = {
  run = function(wid, pid) report("run", wid, pid) end,
  reload = function(wid, pid) report("reload", wid, pid) end,
  terminate = function() end,
}

local crash = {
  run = function(wid, pid)
    report("run", wid, pid)
    os.exit(1)
  end,
}

return assert(({ idle = idle, crash = crash })[kind], "KIND must be idle or crash")
