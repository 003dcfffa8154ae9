-- examples/services.lua: the quickstart.
--
-- Two services: "heavy" with two workers that do a unit of work every
-- second, and "light" with one worker that reports how long it has been
-- up. Run it with `cotylua examples/services.lua` (or `make demo`), then
-- look at it with `M=$(pgrep -f 'cotylua: master'); ps -o pid,args --forest -p $M --ppid $M`:
--
--   kill -HUP  <master>   heavy reloads in place; light has no reload(), so
--                         it is stopped gracefully and started again
--   kill -TERM <master>   every terminate() runs, the manager exits 0
--   Ctrl-C                everything stops at once, the manager exits 1
local cotylua = require("cotylua")
local log = cotylua.log

local Heavy = { name = "heavy", graceful_shutdown_timeout = 5 }

function Heavy:init(greeting)
  self.greeting = greeting
  self.done = 0
  log.info("%s, I am %s worker %d", greeting, self.name, self.worker_id)
end

function Heavy:run()
  while true do
    self.done = self.done + 1 -- a unit of real work would go here
    cotylua.sleep(1)
  end
end

function Heavy:reload()
  log.info("reloading after %d units", self.done)
end

function Heavy:terminate()
  log.info("stopping after %d units", self.done)
end

local Light = { name = "light" }

function Light:init()
  self.started = cotylua.now()
end

function Light:run()
  while true do
    cotylua.sleep(5)
    log.info("up for %.0f s", cotylua.now() - self.started)
  end
end

local manager = cotylua.manager({ graceful_shutdown_timeout = 10 })
manager:add(Heavy, { workers = 2, args = { "hello" } })
manager:add(Light)
manager:register_hooks({
  on_dead_worker = function(service_id, worker_id, exit_code)
    log.warning("service %d worker %d died with %d", service_id, worker_id, exit_code)
  end,
})
return manager
