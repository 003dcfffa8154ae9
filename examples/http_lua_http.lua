-- examples/http_lua_http.lua: an HTTP server on lua-http (cqueues), two
-- workers sharing one listening socket, that loses no request when it is
-- stopped, restarted or resized.
--
--   cotylua examples/http_lua_http.lua          listens on 127.0.0.1:8080
--   HTTP_LISTEN=tcp://127.0.0.1:8081 HTTP_WORKERS=4 cotylua examples/http_lua_http.lua
--   curl http://127.0.0.1:8080/               "hello from worker 0"
--   curl 'http://127.0.0.1:8080/slow?ms=2000' answered after 2 s
--   HTTP_RELOAD=1 cotylua examples/http_lua_http.lua    with a reload (see the end)
--
-- Needs Debian's lua-http and lua-cqueues. lua-http is packaged for Lua
-- 5.1 to 5.3 only, but it is pure Lua and runs on 5.4 as it is: the line
-- below adds the directories where Debian keeps it (/usr/share/lua/5.3 and
-- 5.1) to the search path, after 5.4's own (cqueues itself has a 5.4
-- build).
--
-- The event loop (a cqueues controller) is created in init, in the
-- worker: made when the file loads, it would be one loop shared by every
-- worker. The line `loop.cqueues(cq)` hands terminate and reload to that
-- loop, so they run between two of its callbacks. With `drain_on_stop = true`,
-- SIGTERM (and a restart on SIGHUP, and a reconfigure down) stops
-- accepting, finishes the requests in flight, answers the next request of
-- each keep-alive connection with "connection: close", and the worker
-- exits when run returns.
package.path = package.path .. ";/usr/share/lua/5.3/?.lua;/usr/share/lua/5.3/?/init.lua"
  .. ";/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"

local cotylua = require("cotylua")

local Web = {
  name = "http",
  listen = os.getenv("HTTP_LISTEN") or "tcp://127.0.0.1:8080",
  drain_on_stop = true,
  graceful_shutdown_timeout = 10,
}

function Web:init()
  local cqueues = require("cqueues")
  local http_server = require("http.server")
  self.headers = require("http.headers")
  self.sleep = cqueues.sleep
  self.cq = cqueues.new()
  require("cotylua.loop").cqueues(self.cq)
  self.server = assert(http_server.new({
    cq = self.cq,
    socket = require("cqueues.socket").fdopen(self.sockets[1]),
    tls = false,
    intra_stream_timeout = 2, -- an idle keep-alive connection closes after 2 s
    onstream = function(_, stream)
      self:respond(stream)
    end,
    -- a client that went away is no reason to stop the worker
    onerror = function(_, _, op, err)
      cotylua.log.warning("http server: %s: %s", op, tostring(err))
    end,
  }))
end

function Web:respond(stream)
  local request = assert(stream:get_headers())
  local ms = tonumber((request:get(":path") or ""):match("^/slow%?ms=(%d+)"))
  if ms then
    self.sleep(ms / 1000)
  end
  local body = ("hello from worker %d\n"):format(self.worker_id)
  local h = self.headers.new()
  h:append(":status", "200")
  h:append("content-type", "text/plain")
  h:append("content-length", tostring(#body))
  if cotylua.stopping() then
    h:append("connection", "close")
  end
  if stream:write_headers(h, false) then
    stream:write_chunk(body, true)
  end
end

-- Stop accepting; the connections open finish (see run).
function Web:terminate()
  self.server:pause()
end

-- Until stopping, and then until the last connection has closed.
-- (n_connections is the server's own count of open connections.)
function Web:run()
  while not (cotylua.stopping() and self.server.n_connections == 0) do
    assert(self.cq:step())
  end
end

-- With HTTP_RELOAD=1 the service has a reload: SIGHUP then keeps the
-- workers (reload runs between two turns of the loop). Without it, SIGHUP
-- restarts them, each draining first.
if os.getenv("HTTP_RELOAD") == "1" then
  function Web:reload()
    self.reloads = (self.reloads or 0) + 1
    cotylua.log.info("reloaded (%d)", self.reloads)
  end
end

local manager = cotylua.manager({ graceful_shutdown_timeout = 15 })
manager:add(Web, { workers = tonumber(os.getenv("HTTP_WORKERS")) or 2 })
return manager
