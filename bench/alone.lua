-- bench/alone.lua FILE PORT: runs the first service of a services file
-- alone, in this one process, without cotylua: the baseline that
-- bench/http.lua compares cotylua against.
--
-- A stand-in for the cotylua module records what FILE adds; this script
-- then binds 127.0.0.1:PORT (non-blocking, as the manager would), builds
-- the instance as a worker would (worker_id 0, sockets) and calls init and
-- run. The loop glue (cotylua.loop) is the real one, watching an fd that
-- never becomes readable, as in a worker that is not being stopped.
local file, port = arg[1], tonumber(arg[2])
assert(file and port, "usage: lua5.4 bench/alone.lua FILE PORT")

local dir = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/.."
package.path = dir .. "/lua/?.lua;" .. package.path

local socket = require("socket")

local added
local quiet = socket.udp() -- its fd: never readable
assert(quiet:setsockname("127.0.0.1", 0))

package.loaded["cotylua"] = {
  manager = function()
    return {
      add = function(_, service, opts)
        added = added or { service = service, opts = opts or {} }
        return 1
      end,
      register_hooks = function() end,
    }
  end,
  signal_fd = function() return quiet:getfd() end,
  dispatch = function() end,
  stopping = function() return false end,
  now = socket.gettime,
  sleep = socket.sleep,
  getpid = function() return 0 end,
  log = { info = function() end, warning = function() end, error = print, debug = function() end },
}

dofile(file)
assert(added, file .. " added no service")
local server = assert(socket.bind("127.0.0.1", port, 511))
server:settimeout(0)
local instance = setmetatable({ worker_id = 0, service_id = 1, name = added.service.name,
  sockets = { server:getfd() } }, { __index = added.service })
if instance.init then instance:init() end
instance:run()
