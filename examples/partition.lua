-- examples/partition.lua: N workers split a work queue by worker_id,
-- and N follows a configuration file on SIGHUP.
--
-- The queue holds the items 0 .. PARTITION_ITEMS-1 (shards, tenants,
-- partitions of a topic...). With N workers, item i belongs to the worker
-- whose id is i % N: every item has exactly one owner, and because a
-- respawned worker keeps its worker_id, it takes back the same items. Each
-- worker goes over its items every PARTITION_INTERVAL seconds and writes
-- one line per round to PARTITION_LOG (stdout when unset):
--
--   round WORKER/N pid=PID items=0,3,6,9
--
-- The wanted worker count is read from PARTITION_COUNT_FILE (a file that
-- holds a number; 2 when the variable or the file is missing). On SIGHUP
-- the on_reload hook reads it again and calls manager:reconfigure: going
-- down stops the highest worker ids, going up starts new ones. The service
-- has no reload(), so the manager then restarts every remaining worker
-- gracefully, and each new worker splits by the new count: the count is an
-- upvalue that the hook changes in the manager before the workers are
-- forked again, so they inherit it. (For a moment, while the workers are
-- replaced one by one, old and new owners overlap; a real queue would
-- also lock its items.)
--
--   echo 3 > /tmp/count
--   PARTITION_COUNT_FILE=/tmp/count cotylua examples/partition.lua
--   echo 5 > /tmp/count; kill -HUP <master>   now 5 workers, items by i % 5
local cotylua = require("cotylua")
local log = cotylua.log

local count_file = os.getenv("PARTITION_COUNT_FILE")
local items = tonumber(os.getenv("PARTITION_ITEMS")) or 10
local interval = tonumber(os.getenv("PARTITION_INTERVAL")) or 5
local logfile = os.getenv("PARTITION_LOG")

-- The wanted worker count, from the file; `default` when it has none.
local function read_count(default)
  local f = count_file and io.open(count_file, "r")
  if not f then
    return default
  end
  local n = math.tointeger(tonumber(f:read("l")))
  f:close()
  if not n or n < 1 then
    log.warning("%s holds no worker count >= 1; keeping %d", count_file, default)
    return default
  end
  return n
end

local wanted = read_count(2) -- the manager changes it on SIGHUP, before forking

local Partition = { name = "partition", graceful_shutdown_timeout = 5 }

function Partition:init()
  self.of = wanted -- as it was when the manager forked this worker
  self.mine = {}
  for i = 0, items - 1 do
    if i % self.of == self.worker_id then
      self.mine[#self.mine + 1] = i
    end
  end
  self.out = logfile and assert(io.open(logfile, "a")) or io.stdout
  self.out:setvbuf("line") -- one write(2) per line: workers do not mix lines
end

function Partition:run()
  while true do
    -- the real work on each of self.mine would go here
    self.out:write(("round %d/%d pid=%d items=%s\n"):format(self.worker_id, self.of, cotylua.getpid(),
      table.concat(self.mine, ",")))
    cotylua.sleep(interval)
  end
end

function Partition:terminate()
  log.info("worker %d of %d leaves items %s", self.worker_id, self.of, table.concat(self.mine, ","))
end

local manager = cotylua.manager({ graceful_shutdown_timeout = 10 })
local partition = manager:add(Partition, { workers = wanted })
manager:register_hooks({
  on_reload = function()
    local n = read_count(wanted)
    if n ~= wanted then
      log.info("worker count %d -> %d", wanted, n)
      wanted = n
      manager:reconfigure(partition, n)
    end
  end,
})
return manager
