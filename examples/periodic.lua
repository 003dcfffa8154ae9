-- examples/periodic.lua: a periodic job in every worker, without drift.
--
-- What cotyledon users take futurist's periodics for. Each worker runs the
-- job every PERIODIC_INTERVAL seconds, scheduled against the time it
-- started: tick k is due at start + k * interval, so the time the job
-- itself takes (PERIODIC_WORK seconds here, to make the point) does not
-- push the later ticks back, as `while true do job() sleep(interval) end`
-- would. A tick that is late (the machine was busy) runs at once; ticks
-- missed because the job overran by more than an interval are skipped,
-- not run back to back. terminate and reload are delivered inside
-- cotylua.sleep, so a stop never waits for the next tick.
--
--   cotylua examples/periodic.lua                       2 workers, every 1 s, to stdout
--   PERIODIC_INTERVAL=0.2 PERIODIC_WORKERS=3 PERIODIC_LOG=/tmp/ticks cotylua examples/periodic.lua
--
-- Each tick writes one line: `tick WORKER K due=SECONDS at=SECONDS`, both
-- times on cotylua.now()'s monotonic clock (`start WORKER SECONDS` first).
local cotylua = require("cotylua")
local log = cotylua.log

local interval = tonumber(os.getenv("PERIODIC_INTERVAL")) or 1
local work = tonumber(os.getenv("PERIODIC_WORK")) or 0
local logfile = os.getenv("PERIODIC_LOG")

local Periodic = { name = "periodic", graceful_shutdown_timeout = 5 }

function Periodic:init()
  if logfile then
    self.out = assert(io.open(logfile, "a"))
  else
    self.out = io.stdout
  end
  self.out:setvbuf("line") -- one write(2) per line: workers do not mix lines
  self.ticks = 0
end

-- The job. Replace with real work; here it only reports and takes `work`.
function Periodic:job(k, due)
  self.ticks = self.ticks + 1
  self.out:write(("tick %d %d due=%.6f at=%.6f\n"):format(self.worker_id, k, due, cotylua.now()))
  if work > 0 then
    cotylua.sleep(work)
  end
end

function Periodic:run()
  local start = cotylua.now()
  self.out:write(("start %d %.6f\n"):format(self.worker_id, start))
  local k = 0
  while true do
    k = k + 1
    local due = start + k * interval
    local now = cotylua.now()
    if now > due + interval then -- overran: skip to the next tick still ahead
      local skip = math.floor((now - due) / interval)
      log.warning("job overran: skipping %d tick(s)", skip)
      k = k + skip
      due = start + k * interval
    end
    if due > now then
      cotylua.sleep(due - now)
    end
    self:job(k, due)
  end
end

function Periodic:reload()
  log.info("%d ticks so far, every %g s", self.ticks, interval)
end

function Periodic:terminate()
  log.info("stopping after %d ticks", self.ticks)
  self.out:flush()
end

local manager = cotylua.manager({ graceful_shutdown_timeout = 10 })
manager:add(Periodic, { workers = tonumber(os.getenv("PERIODIC_WORKERS")) or 2 })
return manager
