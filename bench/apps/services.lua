-- bench/apps/services.lua - the cotylua side of the benchmark.
--
--   cotylua bench/apps/services.lua KIND N
--
-- KIND "idle":  N workers; run() reports "run WID PID" and returns, so the
--               worker idles until a signal; reload() reports "reload WID PID".
-- KIND "crash": one worker whose run() reports "run WID PID" and exits 1
--               at once, a crash loop under the default restart throttle.
--
-- Reports are single short lines written to stdout, which the driver makes
-- a pipe and timestamps on receipt: the workers need no clock.
-- bench/apps/services.py is the same program for cotyledon.
local cotylua = require("cotylua")

local kind, n = ...
n = math.tointeger(tonumber(n or "1"))

local function report(what, self)
  io.stdout:write(string.format("%s %d %d\n", what, self.worker_id, cotylua.getpid()))
  io.stdout:flush()
end

local Idle = { name = "idle" }

function Idle:run() report("run", self) end
function Idle:reload() report("reload", self) end
function Idle:terminate() end -- luacheck: ignore 212 (nothing to do)

local Crash = { name = "crash" }

function Crash:run()
  report("run", self)
  os.exit(1)
end

local services = { idle = Idle, crash = Crash }
local service = assert(services[kind], "KIND must be idle or crash")

local manager = cotylua.manager()
manager:add(service, { workers = kind == "crash" and 1 or n })
return manager
